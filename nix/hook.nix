# The unfarm setup hook, nixpkgs style. Use it as:
#   nativeBuildInputs = [ (callPackage ./nix/hook.nix { unfarm = callPackage ./nix/package.nix { }; }) ];
# Not built in this repository's CI (no nixpkgs here); tests/nix_e2e.rs
# exercises nix/unfarm-hook.sh itself with raw derivations and a real Nix.
{ makeSetupHook, unfarm }:
makeSetupHook {
  name = "unfarm-hook";
  propagatedBuildInputs = [ unfarm ];
} ./unfarm-hook.sh
