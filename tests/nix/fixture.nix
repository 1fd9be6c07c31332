# Small fixture store for tests/full/nix_refs.rs: split outputs, a symlink farm
# joining them, and a program whose RUNPATH goes through the farm.
# Built with the host's gcc/coreutils; no nixpkgs needed.
# `salt` makes the test's paths fresh for each run, so a stale store cannot
# hide a bug.
{ salt ? "0" }:
let
  mk = name: script: derivation {
    inherit name salt;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-e" "-c" script ];
    PATH = "/usr/bin:/bin";
  };
  hashOf = p: builtins.substring 11 32 (toString p);
in rec {
  # A shared library that references itself through its own RUNPATH.
  liba = mk "liba-1.0-lib" ''
    mkdir -p $out/lib
    printf 'int a(void){return 41;}\n' > a.c
    gcc -shared -fPIC -o $out/lib/liba.so.1 -Wl,-soname,liba.so.1 -Wl,-rpath,$out/lib a.c
    ln -s liba.so.1 $out/lib/liba.so
  '';
  # Headers and a big file: the dev output nobody needs at run time.
  libadev = mk "liba-1.0-dev" ''
    mkdir -p $out/include
    printf '/* built against ${liba} */\nint a(void);\n' > $out/include/a.h
    head -c 300000 /dev/zero > $out/include/big.dat
  '';
  # The farm: only symlinks into the other outputs.
  joined = mk "liba-joined" ''
    mkdir -p $out/lib $out/include
    ln -s ${liba}/lib/liba.so.1 $out/lib/liba.so.1
    ln -s ${libadev}/include/a.h $out/include/a.h
    ln -s ${libadev}/include/big.dat $out/include/big.dat
  '';
  # The program: RUNPATH through the farm, plus a direct text reference.
  app = mk "app-1.0" ''
    mkdir -p $out/bin $out/share
    printf 'int a(void);\nint main(void){return a() + 1 - 42;}\n' > m.c
    gcc -o $out/bin/app m.c -L${liba}/lib -l:liba.so.1 \
      -Wl,--enable-new-dtags -Wl,-rpath,/run/opengl-driver/lib:${joined}/lib:${liba}/lib
    printf 'name = app\nlibdir = ${liba}/lib\n' > $out/share/app.conf
    chmod +x $out/bin/app
  '';
  # The same program with the farm reference blanked (same bytes, same size):
  # the measured drop in closure size is the farm's added size.
  appnofarm = mk "app-1.0" ''
    mkdir -p $out
    cp -r ${app}/. $out/
    chmod -R u+w $out
    sed -i 's/${hashOf joined}/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee/g' $out/bin/app
  '';
}
