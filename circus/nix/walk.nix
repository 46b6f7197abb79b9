# Circus's job walker: turns a jobs value (a flake's hydraJobs, a release.nix result) into
# a flat list of job records, the same shape nix-eval-jobs prints.
#
# Circus passes this file's text to `nix eval --apply`, applied to its options first:
#   (<this file>) { only = [ "a" "b" ]; strict = false; names = false; }
# - only:   walk just the sub-tree at this attribute path (re-evaluating one job or one
#           branch after the whole walk died from an error tryEval cannot catch);
# - strict: no tryEval, so the job's real error message reaches stderr;
# - names:  return the attribute names at `only` (null when it is not an attrset).
#
# Like Hydra, every nested attrset is walked, except one that says
# `recurseForDerivations = false`. A `throw`/`assert` in a job becomes
# `{ attr; attrPath; error = true; }` and the other jobs go on.
{ only ? [ ], strict ? false, names ? false }:
jobs:
let
  inherit (builtins) attrNames concatLists concatStringsSep deepSeq filter foldl' isAttrs
    isInt isList isString listToAttrs map tryEval;

  try = e: if strict then { success = true; value = e; } else tryEval e;

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  # meta values are strings, lists of them, or attrsets (licenses, maintainers).
  str = v:
    if isString v then v
    else if isList v then concatStringsSep ", " (filter (s: s != "") (map str v))
    else if isAttrs v then
      v.spdxId or v.shortName or v.fullName or v.email or v.github or v.name or ""
    else if v == null then ""
    else toString v;

  int = v: if isInt v then v else null;

  record = attrPath: d:
    let
      meta = d.meta or { };
      aggregate = d._hydraAggregate or false;
    in {
      attr = concatStringsSep "." attrPath;
      name = d.name;
      system = d.system;
      drvPath = d.drvPath;
      outputs = listToAttrs (map (o: { name = o; value = d.${o}.outPath; })
        (d.outputs or [ "out" ]));
      meta = {
        description = str (meta.description or "");
        license = str (meta.license or "");
        homepage = str (meta.homepage or "");
        maintainers = str (meta.maintainers or [ ]);
        timeout = int (meta.timeout or null);
        maxSilent = int (meta.maxSilent or null);
      };
      isAggregate = aggregate == true;
      # A constituent is a derivation (we give its .drv) or the name of another job.
      constituents = if aggregate == true
        then map (c: if isString c then c else c.drvPath) (d.constituents or [ ])
        else [ ];
    };

  failed = attrPath: [{ attr = concatStringsSep "." attrPath; inherit attrPath; error = true; }];

  wants = v: (try (v.recurseForDerivations or true)).value != false;

  visit = attrPath: value:
    let forced = try value; in
    if !forced.success then failed attrPath
    else
      let v = forced.value; in
      if isDerivation v then
        let r = try (let x = record attrPath v; in deepSeq x x); in
        if r.success then [ r.value ] else failed attrPath
      else if isAttrs v && wants v then
        concatLists (map (n: visit (attrPath ++ [ n ]) v.${n}) (attrNames v))
      else [ ];

  selected = foldl' (v: n: v.${n}) jobs only;
in
if names then (if isAttrs selected && !isDerivation selected then attrNames selected else null)
else visit only selected
