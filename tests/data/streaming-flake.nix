# The flake the streaming-evaluation tests evaluate: quick jobs, one whose evaluation takes
# seconds (a fold over a large list, after the quick ones in attrNames order), and with
# @HOG@ one whose evaluation builds a huge list (between the quick ones).
{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      mk = name: extra: builtins.derivation {
        inherit name system;
        nonce = "@NONCE@";
        builder = "/bin/sh";
        args = [ "-c" "echo ${name} ${extra} > $out" ];
      };
      inner = builtins.genList (x: x) 3000;
      slow = builtins.foldl' (a: i: a + builtins.foldl' (x: y: x + y) 0 inner) 0
        (builtins.genList (x: x) @SLOW@);
      quick = builtins.listToAttrs (map (n: {
        name = "quick${toString (1000 + n)}";
        value = mk "quick${toString n}" "";
      }) (builtins.genList (x: x) @QUICK@));
      hog = builtins.length (builtins.genList (x: x) 100000000);
    in {
      hydraJobs = quick // { zslow = mk "zslow" (toString slow); }
        // (if @HOG@ then { quick1000hog = mk "hog" (toString hog); } else { });
    };
}
