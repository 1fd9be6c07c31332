# The unfarm setup hook, nixpkgs style; package.nix exposes it as
# `unfarm.hook`. Use it as:
#   nativeBuildInputs = [ unfarm.hook ];
# Or, outside nixpkgs:
#   nativeBuildInputs = [ (callPackage ./nix/package.nix { }).hook ];
#
# No `substitutions`: the script is installed byte for byte as the tests run
# it (tests/fast/nix_hook.rs, tests/full/nix_e2e.rs). unfarm reaches the
# build through propagatedBuildInputs: a hook sits in nativeBuildInputs, so
# its propagated inputs land there too and the build platform's unfarm is
# on PATH (right when cross compiling); `unfarmBin` still overrides it.
{
  lib,
  makeSetupHook,
  unfarm,
}:

makeSetupHook {
  name = "unfarm-hook";
  propagatedBuildInputs = [ unfarm ];
  meta = {
    description = "Setup hook that runs unfarm fix and unfarm check on every output at the end of fixup";
    inherit (unfarm.meta) license platforms;
  };
} ./unfarm-hook.sh
