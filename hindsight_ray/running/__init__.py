"""Driver code that talks to Ray while a sweep runs or resumes."""
