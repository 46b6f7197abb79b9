# The flake the forge tests evaluate: one job that builds and one that fails, so a commit
# gets a pending status, then a failure; with @FAIL@ = "0" both build and it gets success.
# Only /bin/sh builders, so no nixpkgs is needed.
{
  outputs = { self }:
    let
      mk = name: script: builtins.derivation {
        inherit name;
        system = "@SYSTEM@";
        nonce = "@NONCE@";
        builder = "/bin/sh";
        args = [ "-c" script ];
      };
    in {
      hydraJobs = {
        good = mk "good-1.0" ''
          echo "good builds"
          /bin/mkdir -p $out
        '';
        bad = mk "bad-1.0" ''
          echo "bad fails when asked: @FAIL@"
          [ "@FAIL@" = "0" ] && /bin/mkdir -p $out && exit 0
          exit 1
        '';
      };
    };
}
