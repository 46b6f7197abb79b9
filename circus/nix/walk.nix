# Circus's job walker: turns a jobs value (a flake's hydraJobs, a release.nix result) into
# a flat list of job records, the same shape nix-eval-jobs prints.
#
# Circus passes this file's text to `nix eval --apply`, applied to its options first:
#   (<this file>) { only = [ "a" "b" ]; strict = false; }
# - only:   walk just the sub-tree at this attribute path (re-evaluating one job);
# - strict: no tryEval, so the job's real error message reaches stderr.
#
# Streaming (`tag` set): the walk prints each job as it is done, on stderr through
# `builtins.trace` (`trace: <tag> R <record>`), after `trace: <tag> B <attrPath>` before
# it forces each value, and returns the number of records. The tag is the caller's secret,
# so a repository's own traces cannot pass for records.
# - shard, shards: this process walks one share of the first attrset (from the top) with
#           at least `shards` names; above it every process walks all, and a job found
#           there is shard 0's;
# - after:  resume a walk that died: skip every path up to and including this one.
#
# Like Hydra, every nested attrset is walked, except one that says
# `recurseForDerivations = false`. A `throw`/`assert` in a job becomes
# `{ attr; attrPath; error = true; }` and the other jobs go on.
{ only ? [ ], strict ? false, tag ? null, shard ? 0, shards ? 1, after ? null }:
jobs:
let
  inherit (builtins) attrNames concatLists concatStringsSep deepSeq elemAt filter foldl'
    genList head isAttrs isInt isList isString length lessThan listToAttrs map seq tail
    toJSON trace tryEval;

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
      requiredSystemFeatures = d.requiredSystemFeatures or [ ];
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

  # Streaming: a strict fold over the tree in attrNames order, so jobs come out one by one.
  say = kind: v: trace "${tag} ${kind} ${toJSON v}" null;

  before = a: b: b != [ ] && (a == [ ] || (if head a == head b
    then before (tail a) (tail b) else lessThan (head a) (head b)));
  leadsTo = a: b: a == [ ] || (b != [ ] && head a == head b && leadsTo (tail a) (tail b));
  skipped = p: after != null && !(before after p) && !(leadsTo p after && p != after);

  share = ns: let count = (length ns - shard + shards - 1) / shards; in
    genList (i: elemAt ns (i * shards + shard)) (if count < 0 then 0 else count);

  emit = acc: splitting: r: if splitting && shard != 0 then acc else seq (say "R" r) (acc + 1);

  step = splitting: attrPath: acc: value:
    if skipped attrPath then acc
    else seq (say "B" attrPath) (
      let forced = try value; in
      if !forced.success then emit acc splitting (head (failed attrPath))
      else
        let v = forced.value; in
        if isDerivation v then
          let r = try (let x = record attrPath v; in deepSeq x x); in
          emit acc splitting (if r.success then r.value else head (failed attrPath))
        else if isAttrs v && wants v then
          let
            ns = attrNames v;
            here = splitting && length ns >= shards;
          in foldl' (a: n: step (splitting && !here) (attrPath ++ [ n ]) a v.${n}) acc
            (if here then share ns else ns)
        else acc);

  selected = foldl' (v: n: v.${n}) jobs only;
in
if tag != null then step (shards > 1) only 0 selected
else visit only selected
