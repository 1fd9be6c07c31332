# unfarm, nixpkgs style: callPackage ./nix/package.nix { }
# Not built in this repository's CI (no nixpkgs here); kept small on purpose.
{ lib, rustPlatform }:
rustPlatform.buildRustPackage {
  pname = "unfarm";
  version = "0.1.0";
  src = lib.cleanSource ./..;
  cargoLock.lockFile = ../Cargo.lock;
  # The test suite needs a C compiler, a real Nix and root (tests/nix_*.rs).
  doCheck = false;
  meta = {
    description = "Take Nix symlink farms out of ELF RUNPATHs and runtime closures";
    mainProgram = "unfarm";
  };
}
