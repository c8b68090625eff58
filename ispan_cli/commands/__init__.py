"""One small module per subcommand: parse options, build a config, call the library, render."""
