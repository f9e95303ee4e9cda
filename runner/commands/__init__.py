"""One module per subcommand: `add_arguments(parser)`, `main(args, ctx) -> int`, `EXAMPLES`
(the table is runner.cli.COMMANDS; shared options and helpers in runner.commands.shared)."""
