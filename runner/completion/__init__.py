"""Shell completion scripts made from the real argparse parser (`celonis-runner completion`):
`shape` walks the parser into plain data; `bash`, `zsh` and `fish` each write one script;
`names` reads a manifest's job and pool names for them at a Tab."""
