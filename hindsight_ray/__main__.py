from hindsight_ray.cli import main

raise SystemExit(main())
