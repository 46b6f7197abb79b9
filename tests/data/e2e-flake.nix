# The flake the end-to-end tests evaluate: every kind of job a CI meets.
# Only /bin/sh builders (PATH is empty inside them), so no nixpkgs is needed.
{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      mk = name: script: extra:
        (builtins.derivation ({
          inherit name system;
          # A fresh derivation per test run, so every job really builds (and logs).
          nonce = "@NONCE@";
          builder = "/bin/sh";
          args = [ "-c" script ];
        } // extra));
      withMeta = meta: drv: drv // { inherit meta; };
      lib = mk "lib-1.0" ''
        echo "building lib @REV@"
        /bin/mkdir -p $out/lib
        echo "libdata" > $out/lib/data
      '' { };
    in {
      hydraJobs = {
        hello = withMeta { description = "says hello"; license = "MIT"; } (mk "hello-1.0" ''
          echo "hello from the build"
          /bin/mkdir -p $out
          echo hi > $out/greeting
        '' { });
        inherit lib;
        app = mk "app-1.0" ''
          echo "app uses ${lib}/lib/data"
          /bin/cat ${lib}/lib/data
          /bin/mkdir -p $out
          /bin/cp ${lib}/lib/data $out/copied
        '' { };
        broken = mk "broken-1.0" ''
          echo "about to fail on purpose"
          exit 3
        '' { };
        needs-broken = mk "needs-broken-1.0" ''
          echo ${self.hydraJobs.broken}
          /bin/mkdir -p $out
        '' { };
        flaky = mk "flaky-1.0" ''
          echo "tests failed, but here is the report"
          /bin/mkdir -p $out/nix-support
          echo report > $out/report.txt
          echo > $out/nix-support/failed
        '' { };
        slow = withMeta { timeout = 2; } (mk "slow-1.0" ''
          echo "sleeping past my timeout"
          /bin/sleep 60
          /bin/mkdir -p $out
        '' { });
        docs = mk "docs-1.0" ''
          /bin/mkdir -p $out/share/doc $out/nix-support
          echo "<h1>manual</h1>" > $out/share/doc/index.html
          echo "doc manual $out/share/doc index.html" > $out/nix-support/hydra-build-products
          echo "file binary-dist $out/share/doc/index.html" >> $out/nix-support/hydra-build-products
          echo "lines 42 lines" > $out/nix-support/hydra-metrics
          echo "coverage 87.5 %" >> $out/nix-support/hydra-metrics
          echo "docs built"
        '' { };
        ticker = mk "ticker-1.0" ''
          echo "tick one"
          /bin/sleep @TICK@
          echo "tick two"
          /bin/mkdir -p $out
        '' { };
        oops = throw "this job cannot be evaluated";
        release = (mk "release" ''
          /bin/mkdir -p $out
        '' { }) // {
          _hydraAggregate = true;
          constituents = [ "hello" "docs" ];
        };
      };
    };
}
