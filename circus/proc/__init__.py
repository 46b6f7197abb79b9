"""Every child process Circus starts: the mechanism (`child`) and the Nix and git calls
made through it (`nix`, `git`)."""
