# shellcheck shell=bash
# A small stand-in for nixpkgs' pkgs/stdenv/generic/setup.sh, for
# tests/fast/nix_hook.rs: only what a fixup-time setup hook depends on, behaving
# as setup.sh does (written from its documented behaviour, not copied):
#
# - shell options: `set -eu -o pipefail`, `shopt -s inherit_errexit nullglob`;
# - structured attrs: when NIX_ATTRS_SH_FILE is set it is sourced (outputs is
#   an associative array name -> path, list attributes are bash arrays) and
#   every output is exported as a variable named after it; otherwise plain
#   environment strings (`outputs="out lib bin"`, `$out`, `$lib`, ...);
# - getAllOutputNames, runHook (the implicit hook -- a function or a string
#   variable named like the hook -- first, then the `<name>Hooks` array),
#   _eval (functions called, strings evaluated);
# - fixupPhase: chmod the outputs, runHook preFixup, `prefix=<output> runHook
#   fixupOutput` for each output, runHook postFixup;
# - stdenv's patchELF as a fixupOutputHook: `patchelf --shrink-rpath` on
#   every ELF file of the output outside `.build-id` dirs, unless dontPatchELF;
# - multiple-outputs.sh (a default stdenv hook): outputDev, outputBin,
#   outputInclude, outputLib, outputDoc, outputDevdoc, outputMan,
#   outputDevman, outputInfo each set, unless the derivation set it, to the
#   first of its candidate outputs that exists (`dev` else `out`, ...);
# - autoAddDriverRunpath: registered in postFixupHooks when its setup hook is
#   sourced; prepends the driver dir (`patchelf --set-rpath`) to every dynamic
#   ELF file of every output.
#
# - inputs: `buildInputs` (and `propagatedBuildInputs`), with what each
#   lists in `nix-support/propagated-build-inputs`, recursively, are the
#   host-target packages (offsets 0 1; each once); the setup-hook files are
#   sourced as nativeBuildInputs' are (hostOffset=-1, targetOffset=0, so
#   `addEnvHooks "$targetOffset" f` registers f for host-platform deps);
#   then the env hooks run once per package and matching hook array: with
#   strictDeps the host-host hooks on host-host packages (none here) and
#   the host-target ones on host-target packages; without it every hook on
#   every package (so an env hook sees a package once per array it is in).
#
# Usage: bash stdenv-emu.sh HOOK... -- where each HOOK is a setup-hook file
# sourced in order (as setup.sh sources the setup hooks of
# nativeBuildInputs), then `postInstall` (a string, if set) runs, then
# fixupPhase.

set -eu
set -o pipefail
shopt -s inherit_errexit nullglob

# Nix before 2.13 leaves .attrs.sh in the build dir without naming it.
if [ -z "${NIX_ATTRS_SH_FILE-}" ] && [ -f .attrs.sh ]; then
    NIX_ATTRS_SH_FILE=$PWD/.attrs.sh
fi
if [ -n "${NIX_ATTRS_SH_FILE-}" ]; then
    __structuredAttrs=1
    # shellcheck disable=SC1090
    source "$NIX_ATTRS_SH_FILE"
    for outputName in "${!outputs[@]}"; do
        export "$outputName=${outputs[$outputName]}"
    done
    unset outputName
else
    __structuredAttrs=
    : "${outputs:=out}"
fi

declare -a preFixupHooks=() fixupOutputHooks=() postFixupHooks=()

# Env hooks by the host offset of the deps they are for (build, host,
# target), one array per (host, target) pair as in setup.sh.
declare -a envBuildBuildHooks=() envBuildHostHooks=() envBuildTargetHooks=()
declare -a envHostHostHooks=() envHostTargetHooks=() envTargetTargetHooks=()
declare -a pkgBuildHookVars=(envBuildBuildHook envBuildHostHook envBuildTargetHook)
declare -a pkgHostHookVars=(envHostHostHook envHostTargetHook)
declare -a pkgTargetHookVars=(envTargetTargetHook)
declare -a pkgHookVarVars=(pkgBuildHookVars pkgHostHookVars pkgTargetHookVars)
addEnvHooks() {
    local depHostOffset="$1"
    shift
    local slice="${pkgHookVarVars[$depHostOffset + 1]}[@]" var
    for var in "${!slice}"; do
        eval "${var}s"'+=("$@")'
    done
}

# The host-target packages: buildInputs, propagatedBuildInputs and what
# they propagate, depth first, each once.
declare -a pkgsHostHost=() pkgsHostTarget=()
findHostTarget() {
    local pkg="$1" seen next
    for seen in ${pkgsHostTarget[@]+"${pkgsHostTarget[@]}"}; do
        [ "$seen" = "$pkg" ] && return 0
    done
    [ -e "$pkg" ] || { echo "build input $pkg does not exist" >&2; exit 1; }
    pkgsHostTarget+=("$pkg")
    if [ -f "$pkg/nix-support/propagated-build-inputs" ]; then
        for next in $(<"$pkg/nix-support/propagated-build-inputs"); do
            findHostTarget "$next"
        done
    fi
}
declare -a inputs=()
if [ -n "$__structuredAttrs" ]; then
    inputs=(${buildInputs[@]+"${buildInputs[@]}"} ${propagatedBuildInputs[@]+"${propagatedBuildInputs[@]}"})
else
    # Plain env: whitespace-separated store paths, as setup.sh splits them.
    read -r -d '' -a inputs <<<"${buildInputs-} ${propagatedBuildInputs-}" || true
fi
for pkg in ${inputs[@]+"${inputs[@]}"}; do
    findHostTarget "$pkg"
done
unset pkg inputs

# multiple-outputs.sh's defaults: VAR keeps a value the derivation gave it,
# else takes the first candidate naming a non-empty variable (an output).
defaultOutput() {
    local var="$1" cand
    shift
    [ -z "${!var-}" ] || return 0
    for cand in "$@"; do
        if [ -n "${!cand-}" ]; then
            printf -v "$var" '%s' "$cand"
            return 0
        fi
    done
    [ "$var" = outputDevdoc ] && { outputDevdoc=REMOVE; return 0; }
    echo "no output for $var among: $*" >&2
    return 1
}
defaultOutput outputDev dev out
defaultOutput outputBin bin out
defaultOutput outputInclude "$outputDev"
defaultOutput outputLib lib out
defaultOutput outputDoc doc out
defaultOutput outputDevdoc devdoc
defaultOutput outputMan man "$outputBin"
defaultOutput outputDevman devman devdoc "$outputMan"
defaultOutput outputInfo info "$outputBin"

getAllOutputNames() {
    if [ -n "$__structuredAttrs" ]; then
        echo "${!outputs[@]}"
    else
        echo "$outputs"
    fi
}

_eval() {
    if declare -F "$1" >/dev/null 2>&1; then
        "$@"
    else
        eval "$1"
    fi
}

_callImplicitHook() {
    local def="$1" hookName="$2"
    if declare -F "$hookName" >/dev/null; then
        "$hookName"
    elif [ -n "${!hookName-}" ]; then
        eval "${!hookName}"
    else
        return "$def"
    fi
}

runHook() {
    local hookName="$1"
    shift
    local hooksSlice="${hookName%Hook}Hooks[@]"
    local hook
    for hook in "_callImplicitHook 0 $hookName" ${!hooksSlice+"${!hooksSlice}"}; do
        _eval "$hook" "$@"
    done
    return 0
}

isELF() {
    local fn="$1" fd magic
    exec {fd}<"$fn"
    LC_ALL=C read -r -n 4 -u "$fd" magic || true
    exec {fd}<&-
    [ "$magic" = $'\177ELF' ]
}

patchELF() {
    local dir="$1"
    [ -e "$dir" ] || return 0
    echo "shrinking RPATHs of ELF executables and libraries in $dir"
    local i
    while IFS= read -r -d $'\0' i; do
        if [[ "$i" =~ .build-id ]]; then continue; fi
        if ! isELF "$i"; then continue; fi
        echo "shrinking $i"
        patchelf --shrink-rpath "$i" || true
    done < <(find "$dir" -type f -print0)
}
fixupOutputHooks+=('if [ -z "${dontPatchELF-}" ]; then patchELF "$prefix"; fi')

# autoAddDriverRunpath, as its setup hook registers it.
driverLink=${driverLink:-/run/opengl-driver}
addDriverRunpath() {
    local file origRpath
    for file in "$@"; do
        isELF "$file" || continue
        origRpath=$(patchelf --print-rpath "$file")
        patchelf --set-rpath "$driverLink/lib${origRpath:+:$origRpath}" "$file"
    done
}
autoFixElfFiles() {
    local fn="$1" output file
    for output in $(getAllOutputNames); do
        [ -e "${!output}" ] || continue
        while IFS= read -r -d $'\0' file; do
            isELF "$file" || continue
            # Dynamic objects only: patchelf cannot read a RUNPATH elsewhere.
            patchelf --print-rpath "$file" >/dev/null 2>&1 || continue
            "$fn" "$file"
        done < <(find "${!output}" -type f -print0)
    done
}
if [ -n "${autoAddDriverRunpath-}" ]; then
    postFixupHooks+=("autoFixElfFiles addDriverRunpath")
fi

fixupPhase() {
    local output
    for output in $(getAllOutputNames); do
        if [ -e "${!output}" ]; then chmod -R u+w,u-s,g-s "${!output}"; fi
    done
    runHook preFixup
    for output in $(getAllOutputNames); do
        prefix="${!output}" runHook fixupOutput
    done
    runHook postFixup
}

sourceHook() {
    local -ri hostOffset=-1 targetOffset=0
    # shellcheck disable=SC1090
    source "$1"
}
while [ "$#" -gt 0 ]; do
    sourceHook "$1"
    shift
done
# setup.sh's _addToEnv, for the host offset 0 arrays (the only ones here).
addToEnv() {
    local hook pkg
    for pkg in ${pkgsHostTarget[@]+"${pkgsHostTarget[@]}"}; do
        if [ -z "${strictDeps-}" ]; then
            runHook envHostHostHook "$pkg"
        fi
        runHook envHostTargetHook "$pkg"
    done
}
addToEnv
if [ -n "${postInstall-}" ]; then eval "$postInstall"; fi
fixupPhase
echo "fixupPhase done"
