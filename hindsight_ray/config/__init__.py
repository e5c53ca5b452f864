"""The sweep config: the pydantic models (``schema``), files and ``--set`` overrides (``files``), and the
reference generated from the models with each value's source (``reference``)."""
