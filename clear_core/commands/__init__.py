"""CLI subcommands, one module per area. Each module has `register(subparsers, default_workspace)`;
each handler takes the parsed args and returns an exit code."""
