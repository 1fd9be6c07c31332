# nix/package.nix and nix/hook.nix evaluated against stand-ins for the
# nixpkgs functions they call (no nixpkgs here), for tests/full/nix_files.rs.
# The stand-ins take the arguments the real ones take and keep them, so the
# test can check what the files hand to nixpkgs.
let
  lib = {
    licenses = { mit = "mit"; asl20 = "asl20"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    fileset = {
      unions = paths:
        assert builtins.all builtins.pathExists paths; map toString paths;
      toSource = { root, fileset }: { root = toString root; inherit fileset; };
    };
  };
  # buildRustPackage (finalAttrs: { ... }): a fixed point, as in nixpkgs.
  rustPlatform.buildRustPackage = f:
    let
      attrs = f (attrs // { finalPackage = pkg; });
      pkg = attrs // { isPackage = true; };
    in pkg;
  makeSetupHook = args: script: { inherit args; script = toString script; };
  callPackage = path: overrides:
    import path ({ inherit lib makeSetupHook; } // overrides);
  unfarm = import ../../nix/package.nix {
    inherit lib rustPlatform callPackage;
    versionCheckHook = "versionCheckHook";
  };
  hook = unfarm.passthru.hook;
in
{
  inherit (unfarm) pname version doInstallCheck;
  src = unfarm.src;
  lockFile = toString unfarm.cargoLock.lockFile;
  meta = { inherit (unfarm.meta) description license mainProgram platforms; };
  hook = {
    inherit (hook) script;
    inherit (hook.args) name;
    # The hook brings the very package it is the hook of.
    propagatesUnfarm = builtins.all (p: p ? isPackage && p.pname == "unfarm") hook.args.propagatedBuildInputs
      && hook.args.propagatedBuildInputs != [ ];
    substitutions = hook.args.substitutions or null;
    meta = hook.args.meta;
  };
}
