# End-to-end fixture for tests/full/nix_e2e.rs: split outputs (lib/dev/static), a
# CUDA-like library with a stubs output, a symlink farm joining every output,
# and an app linked with its RUNPATH through the farm -- built once as is and
# once with nix/unfarm-hook.sh run at the end of a (minimal) fixup phase.
# Host gcc and coreutils, raw derivations, no nixpkgs. `salt` makes every run
# build fresh paths; `unfarmBin` / `hook` are absolute paths outside the store
# (fine without a sandbox).
{ salt ? "0", unfarmBin ? "unfarm", hook ? ../../nix/unfarm-hook.sh
, emu ? ./stdenv-emu.sh }:
let
  mk = args: script: derivation ({
    inherit salt;
    system = builtins.currentSystem;
    builder = "/bin/bash";
    args = [ "-e" "-c" script ];
    PATH = "/usr/bin:/bin";
  } // args);
  # 200 KB of filler, so each output has a visible size in the closure.
  pad = f: "head -c 200000 /dev/zero > ${f}";
in rec {
  foo = mk { name = "foo-1.2.3"; outputs = [ "lib" "dev" "static" ]; } ''
    mkdir -p $lib/lib $dev/include $dev/lib $static/lib
    printf 'int foo(void){return 40;}\n' > foo.c
    gcc -shared -fPIC -o $lib/lib/libfoo.so.1.2.3 -Wl,-soname,libfoo.so.1 foo.c
    ln -s libfoo.so.1.2.3 $lib/lib/libfoo.so.1
    printf 'int foo(void);\n' > $dev/include/foo.h
    ${pad "$dev/include/foo-big.h"}
    ln -s $lib/lib/libfoo.so.1 $dev/lib/libfoo.so
    gcc -c -fPIC -o foo.o foo.c && ar rcs $static/lib/libfoo.a foo.o
    ${pad "$static/lib/libfoo-extra.a"}
  '';
  # CUDA-like: a toolkit library, a library only ever dlopen()ed by soname,
  # and a fake driver libcuda.so in a stubs output.
  cuda = mk { name = "cudalike-12.0"; outputs = [ "lib" "stubs" ]; } ''
    mkdir -p $lib/lib $stubs/lib/stubs
    printf 'int cublas(void){return 2;}\n' > b.c
    gcc -shared -fPIC -o $lib/lib/libcublas.so.12 -Wl,-soname,libcublas.so.12 b.c
    printf 'int builtins(void){return 7;}\n' > n.c
    gcc -shared -fPIC -o $lib/lib/libnvrtc-builtins.so.12 -Wl,-soname,libnvrtc-builtins.so.12 n.c
    printf 'int cuInit(int x){return 999;}\n' > c.c
    gcc -shared -fPIC -o $stubs/lib/stubs/libcuda.so -Wl,-soname,libcuda.so.1 c.c
    ${pad "$stubs/lib/stubs/stub-data"}
  '';
  # The farm: symlinks (only) to every output above.
  farm = mk { name = "foo-cuda-farm"; } ''
    mkdir -p $out/lib/stubs $out/include
    for d in ${foo.lib}/lib ${foo.dev}/lib ${foo.static}/lib ${cuda.lib}/lib; do
      for f in $d/*; do ln -s $f $out/lib/; done
    done
    ln -s ${cuda.stubs}/lib/stubs/libcuda.so $out/lib/stubs/libcuda.so
    ln -s ${cuda.stubs}/lib/stubs/stub-data $out/lib/stubs/stub-data
    for f in ${foo.dev}/include/*; do ln -s $f $out/include/; done
  '';
  mkApp = name: withHook: mk { inherit name; outputs = [ "out" ]; } ''
    mkdir -p $out/bin $out/lib
    F=${farm}
    cat > core.c <<'C'
    int foo(void);
    int core(void){return foo() + 1;}
    C
    gcc -shared -fPIC -o $out/lib/libappcore.so -Wl,-soname,libappcore.so core.c \
      -I$F/include -L$F/lib -lfoo -Wl,--enable-new-dtags -Wl,-rpath,$F/lib
    cat > app.c <<'C'
    #include <stdio.h>
    int foo(void); int cublas(void);
    int main(void){ printf("app %d\n", foo() + cublas()); return foo() + cublas() == 42 ? 0 : 1; }
    C
    gcc -o $out/bin/app app.c -L$F/lib -lfoo -l:libcublas.so.12 \
      -Wl,--enable-new-dtags -Wl,-rpath,$F/lib:$F/lib/stubs
    cat > dl.c <<'C'
    #include <dlfcn.h>
    #include <stdio.h>
    int main(void){
      void *h = dlopen("libnvrtc-builtins.so.12", RTLD_NOW);
      if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
      int (*f)(void) = (int (*)(void))dlsym(h, "builtins");
      printf("dl %d\n", f()); return f() == 7 ? 0 : 1; }
    C
    gcc -o $out/bin/dl dl.c -ldl -Wl,--enable-new-dtags -Wl,-rpath,$F/lib:$F/lib/stubs
    cat > orig.c <<'C'
    #include <stdio.h>
    int core(void);
    int main(void){ printf("orig %d\n", core()); return core() == 41 ? 0 : 1; }
    C
    gcc -o $out/bin/orig orig.c -L$out/lib -lappcore \
      -Wl,--enable-new-dtags -Wl,-rpath,'$ORIGIN/../lib':$F/lib
    ${if withHook then ''
      # A minimal fixupPhase, as stdenv runs it: setup hooks are sourced
      # first, then preFixupHooks, the fixup, postFixupHooks.
      outputs=out
      unfarmBin=${unfarmBin}
      unfarmFlags=--system
      preFixupHooks=() postFixupHooks=()
      source ${hook}
      # Another RUNPATH hook, sourced AFTER ours (as autoPatchelfHook may be):
      # it puts the farm back; unfarm must still run after it.
      lateHook() { echo "lateHook: adding the farm"; patchelf --add-rpath $F/lib $out/bin/orig; }
      postFixupHooks+=(lateHook)
      for h in "''${preFixupHooks[@]}"; do $h; done
      for h in "''${postFixupHooks[@]}"; do $h; done
    '' else ""}
  '';
  app = mkApp "app-1.0" false;
  appFixed = mkApp "app-1.0" true;
  # jaxlib-style, the way nixpkgs builds it: __structuredAttrs (lists are
  # bash arrays in .attrs.sh), outputs out/lib/bin/dev/debug, every ELF
  # with the farm in its RUNPATH, separateDebugInfo-style files, then
  # fixupPhase under tests/nix/stdenv-emu.sh (setup.sh's options, stdenv's
  # patchELF, autoAddDriverRunpath) with the hook.
  jaxlike = derivation {
    name = "jaxlike-1.0";
    inherit salt unfarmBin;
    system = builtins.currentSystem;
    builder = "/bin/bash";
    __structuredAttrs = true;
    outputs = [ "out" "lib" "bin" "dev" "debug" ];
    PATH = "/usr/bin:/bin";
    autoAddDriverRunpath = true;
    unfarmDlopen = [ "libfoo.so.1" "libnvrtc-builtins.so.12" ];
    unfarmKeep = [ "*-no-such-dir/lib" ];
    unfarmFlags = [ "--system" ];
    args = [ "-e" "-c" ''
      source .attrs.sh
      for o in "''${!outputs[@]}"; do export "$o=''${outputs[$o]}"; done
      F=${farm}
      mkdir -p $out/bin $lib/lib $bin/bin $dev/include $debug/lib/debug/.build-id/ab
      printf 'int foo(void);\nint core(void){return foo() + 1;}\n' > core.c
      # Through the farm too: the driver step grows it with patchelf first.
      gcc -shared -fPIC -o $lib/lib/libappcore.so -Wl,-soname,libappcore.so core.c \
        -L$F/lib -l:libfoo.so.1 -Wl,--enable-new-dtags -Wl,-rpath,$F/lib
      cat > app.c <<'C'
      #include <stdio.h>
      int core(void); int cublas(void);
      int main(void){ printf("app %d\n", core() + cublas()); return 0; }
      C
      gcc -o $bin/bin/app app.c -L$lib/lib -lappcore -L$F/lib -l:libcublas.so.12 \
        -Wl,--enable-new-dtags -Wl,-rpath,$lib/lib:$F/lib:$F/lib/stubs
      cat > dl.c <<'C'
      #include <dlfcn.h>
      #include <stdio.h>
      int main(void){
        void *h = dlopen("libnvrtc-builtins.so.12", RTLD_NOW);
        if (!h) { printf("dlopen failed: %s\n", dlerror()); return 1; }
        int (*f)(void) = (int (*)(void))dlsym(h, "builtins");
        printf("dl %d\n", f()); return 0; }
      C
      gcc -o $out/bin/dl dl.c -ldl -Wl,--enable-new-dtags -Wl,-rpath,$F/lib
      printf 'int core(void);\n' > $dev/include/jaxlike.h
      # multiple-outputs puts pkg-config files in dev: naming the farm there
      # is a warning (dev is build-time), not a failed build.
      mkdir -p $dev/lib/pkgconfig
      printf 'prefix=%s\nLibs: -L%s/lib -lappcore\n' "$lib" "$F" > $dev/lib/pkgconfig/jaxlike.pc
      objcopy --only-keep-debug $bin/bin/app $debug/lib/debug/.build-id/ab/cdef01.debug
      objcopy --only-keep-debug --compress-debug-sections $lib/lib/libappcore.so \
        $debug/lib/debug/.build-id/ab/cdef02.debug
      bash ${emu} ${hook}
    '' ];
  };
  # autoPatchelf mode (unfarmAutoPatchelf = 1) on a "prebuilt" package, as
  # nixpkgs builds a wheel or a .deb: binaries and libraries with no
  # RUNPATH, their libraries from buildInputs given as `-dev` outputs that
  # propagate their `lib` (as multiple-outputs.sh makes them), fixup under
  # tests/nix/stdenv-emu.sh (plain env) with the hook; the interpreter from
  # $NIX_BINTOOLS (a glibc copied from the host into the store).
  glibcLike = mk { name = "glibc-like-2"; } ''
    mkdir -p $out/lib
    for f in ld-linux-x86-64.so.2 libc.so.6 libm.so.6; do
      cp -L /lib/x86_64-linux-gnu/$f $out/lib/$f
    done
  '';
  bintoolsLike = mk { name = "bintools-like-2"; } ''
    mkdir -p $out/nix-support
    echo ${glibcLike}/lib/ld-linux-x86-64.so.2 > $out/nix-support/dynamic-linker
  '';
  # A library package split into lib and dev: dev has the linker-name link
  # and propagates lib.
  mkSplit = name: version: src: mk { name = "${name}-${version}"; outputs = [ "lib" "dev" ]; } ''
    mkdir -p $lib/lib $dev/lib $dev/include $dev/nix-support
    printf '%s\n' '${src}' > ${name}.c
    gcc -shared -fPIC -o $lib/lib/lib${name}.so.${version} -Wl,-soname,lib${name}.so.${version} ${name}.c
    ln -s $lib/lib/lib${name}.so.${version} $dev/lib/lib${name}.so
    printf 'int ${name}(void);\n' > $dev/include/${name}.h
    ${pad "$dev/include/${name}-big.h"}
    echo $lib > $dev/nix-support/propagated-build-inputs
  '';
  zeta = mkSplit "zeta" "1" "int zeta(void){return 3;}";
  cudart = mkSplit "cudart" "12" "int cudart(void){return 20;}";
  # Only ever loaded by a name built at run time: runtimeDependencies.
  plugin = mk { name = "plugin-1.0"; } ''
    mkdir -p $out/lib
    printf 'int plugin(void){return 100;}\n' > p.c
    gcc -shared -fPIC -o $out/lib/libplugin.so.1 -Wl,-soname,libplugin.so.1 p.c
  '';
  # Plain env (lists as strings) or __structuredAttrs (lists in .attrs.sh).
  mkPrebuilt = name: ignore: structured: mk ({
    inherit name;
    outputs = [ "out" "lib" ];
    unfarmAutoPatchelf = "1";
    NIX_BINTOOLS = "${bintoolsLike}";
    inherit unfarmBin;
  } // (if structured then {
    __structuredAttrs = true;
    buildInputs = [ zeta.dev cudart.dev ];
    runtimeDependencies = [ plugin ];
    appendRunpaths = [ "/opt/appended/lib" ];
    autoPatchelfIgnoreMissingDeps = if ignore == "" then [ ] else [ ignore ];
  } else {
    buildInputs = "${zeta.dev} ${cudart.dev}";
    runtimeDependencies = "${plugin}";
    appendRunpaths = "/opt/appended/lib";
    autoPatchelfIgnoreMissingDeps = ignore;
  })) ''
    ${if structured then ''
      source .attrs.sh
      for o in "''${!outputs[@]}"; do export "$o=''${outputs[$o]}"; done
    '' else ""}
    mkdir -p $out/bin $lib/lib ghost
    # Built against libghost, which no input provides: the "prebuilt" needs it.
    printf 'int ghost(void){return 1;}\n' > ghost.c
    gcc -shared -fPIC -o ghost/libghost.so.1 -Wl,-soname,libghost.so.1 ghost.c
    printf 'int ghost(void);\nint extra(void){return ghost();}\n' > extra.c
    gcc -shared -fPIC -o $lib/lib/libextra.so.1 -Wl,-soname,libextra.so.1 extra.c -Lghost -l:libghost.so.1
    printf 'int zeta(void);\nint core(void){return zeta() + 6;}\n' > core.c
    gcc -shared -fPIC -o $lib/lib/libcore.so.1 -Wl,-soname,libcore.so.1 core.c \
      -L${zeta.dev}/lib -lzeta
    cat > loader.c <<'C'
    #include <dlfcn.h>
    int loader(void) {
      void *h = dlopen("libcudart.so.12", RTLD_NOW);
      if (!h) return -1000;
      int (*f)(void) = (int (*)(void))dlsym(h, "cudart");
      return f ? f() : -2000;
    }
    C
    gcc -shared -fPIC -o $lib/lib/libloader.so.1 -Wl,-soname,libloader.so.1 loader.c -ldl
    cp ${./plugins.c} plugins.c
    gcc -shared -fPIC -o $lib/lib/libplugins.so.1 -Wl,-soname,libplugins.so.1 plugins.c -ldl
    cat > app.c <<'C'
    #include <stdio.h>
    int core(void); int loader(void); int plugins(void);
    int main(void){ printf("app %d\n", core() + loader() + plugins()); return 0; }
    C
    gcc -o $out/bin/app app.c -L$lib/lib -l:libcore.so.1 -l:libloader.so.1 -l:libplugins.so.1 \
      -Wl,-rpath-link,${zeta.lib}/lib
    printf '#include <stdio.h>\nint zeta(void);\nint main(void){ printf("plain %%d\\n", zeta()); return 0; }\n' > plain.c
    gcc -o $out/bin/plain plain.c -L${zeta.dev}/lib -lzeta
    rm -r ghost
    bash ${emu} ${hook}
  '';
  prebuilt = mkPrebuilt "prebuilt-1.0" "libghost.so.*" false;
  prebuiltStructured = mkPrebuilt "prebuilt-structured-1.0" "libghost.so.*" true;
  # The same with nothing ignored: libghost.so.1 fails the build.
  prebuiltMissing = mkPrebuilt "prebuilt-missing-1.0" "" false;
  # The hook in check-only mode must fail the build.
  appCheckOnly = mk { name = "app-checkonly"; } ''
    mkdir -p $out/bin
    cp ${app}/bin/app $out/bin/app
    outputs=out
    unfarmBin=${unfarmBin}
    unfarmFlags=--system
    unfarmCheckOnly=1
    preFixupHooks=() postFixupHooks=()
    source ${hook}
    for h in "''${preFixupHooks[@]}"; do $h; done
    for h in "''${postFixupHooks[@]}"; do $h; done
  '';
}
