"""Activities: every touchpoint on every channel, call reports, amendments and tasks."""
