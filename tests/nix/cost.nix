# Fixture for tests/full/nix_cost.rs: the unfixed app of e2e.nix, and a copy of it
# fixed by `unfarm fix` inside a build. Before fixing, that build runs
# `unfarm fix --dry-run --json` on its own (not yet registered) output and
# keeps the prediction in a second output, `pred`, so the prediction made
# inside a Nix build can be compared with what Nix registers for `out`.
{ salt ? "0", unfarmBin ? "unfarm" }:
let
  e2e = import ./e2e.nix { inherit salt unfarmBin; };
in {
  inherit (e2e) app farm;
  appRefixed = derivation {
    name = "app-refixed";
    inherit salt;
    system = builtins.currentSystem;
    builder = "/bin/bash";
    outputs = [ "out" "pred" ];
    PATH = "/usr/bin:/bin";
    args = [ "-e" "-c" ''
      cp -r ${e2e.app}/. $out
      chmod -R u+w $out
      mkdir -p $pred
      ${unfarmBin} fix --dry-run --json --system $out > $pred/dry-run.json
      ${unfarmBin} fix --system $out
    '' ];
  };
}
