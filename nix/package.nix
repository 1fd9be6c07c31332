# unfarm, in the shape of a nixpkgs `pkgs/by-name/un/unfarm/package.nix`
# (with hook.nix and unfarm-hook.sh beside it). Outside this repository
# `src` would be a fetcher; the rest stays as it is. Build it here with:
#   nix-build -E 'with import <nixpkgs> { }; callPackage ./nix/package.nix { }'
# The setup hook is `unfarm.hook` (see hook.nix).
{
  lib,
  rustPlatform,
  callPackage,
  versionCheckHook,
}:

rustPlatform.buildRustPackage (finalAttrs: {
  pname = "unfarm";
  version = "0.1.0";

  # Only what cargo reads (the manifest names README.md, and tests/fast and
  # tests/full as targets: they must exist though the tests do not run).
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../README.md
      ../src
      ../tests
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The fast tier runs host programs (/usr/bin/ls, gcc-built fixtures run
  # under the host loader) and the full tier needs root, a real Nix and
  # qemu-user: neither fits the build sandbox. The install check runs the
  # binary that was built.
  doCheck = false;
  nativeInstallCheckInputs = [ versionCheckHook ];
  doInstallCheck = true;

  passthru.hook = callPackage ./hook.nix { unfarm = finalAttrs.finalPackage; };

  meta = {
    description = "Take Nix symlink farms out of ELF RUNPATHs and runtime closures";
    longDescription = ''
      unfarm rewrites ELF RUNPATHs that name a symlink farm (symlinkJoin,
      buildEnv) to the real library outputs, proves with a model of glibc's
      ld.so that every library still resolves to the same file, and explains
      what each reference costs in the runtime closure. Its setup hook
      (unfarm.hook) does this at the end of fixup.
    '';
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "unfarm";
    platforms = lib.platforms.linux;
  };
})
