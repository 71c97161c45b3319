"""Services: operations the CLI, tasks and tests call with an engine or a session."""
