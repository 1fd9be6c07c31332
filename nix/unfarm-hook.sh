# shellcheck shell=bash
# unfarm setup hook: take symlink farms, dev, static and stub outputs out of
# the runtime closure by rewriting ELF RUNPATHs to the real `lib` outputs.
#
# Runs `unfarm fix` on every output, then `unfarm check`; the build fails when
# an error-level finding remains.
#
# Variables (set them in the derivation; each list may be a whitespace-
# separated string or, with __structuredAttrs, a list/bash array):
#   dontUnfarm=1        skip entirely (stdenv's patchELF then runs as usual)
#   unfarmCheckOnly=1   only run `unfarm check` (fail on errors), write nothing
#   unfarmDlopen        sonames the package dlopen()s   -> --dlopen SONAME each
#   unfarmKeep          RUNPATH entries/globs to keep   -> --keep PATTERN each
#   unfarmAllow         store paths a reference may name on purpose -> --allow each
#   unfarmFlags         extra flags for check and fix (e.g. --shrink, --system)
#   unfarmBin           the unfarm binary (default: `unfarm` from PATH)
#
# autoPatchelf mode (opt-in: unfarmAutoPatchelf=1) replaces autoPatchelfHook
# and the hand-written `patchelf --add-rpath`: the same fix run also gives
# each object the input dirs its needs use (DT_NEEDED, .note.dlopen, soname
# literals, computed names), the outputs' own library dirs first, then
# `--libs` from the inputs as autoPatchelfHook gathers them: `$dep/lib` of
# every buildInputs entry and what it propagates (an env hook, registered
# at source time like autoPatchelfHook's), then the dirs added with
# addAutoPatchelfSearchPath [--no-recurse] [--] DIR... (relative DIRs read
# against the working dir of the call; defined here unless
# autoPatchelfHook already did). Dirs that do not exist are left out. It
# reads autoPatchelfHook's own variables:
#   runtimeDependencies  packages -> --runtime-dependency PKG/lib: every
#                        object that can dlopen(), libraries included
#   appendRunpaths       dirs     -> --append-runpath DIR
#   autoPatchelfIgnoreMissingDeps  sonames/globs -> --ignore-missing (`1`
#                        or `*`: all); any other need nothing provides
#                        fails the build, as under autoPatchelfHook
#   dontAutoPatchelf=1   turns the mode off again
# and sets PT_INTERP of dynamic executables to
# $NIX_BINTOOLS/nix-support/dynamic-linker (--interpreter). A packager drops
# autoPatchelfHook and the `patchelf --add-rpath` lines from the
# derivation. autoAddDriverRunpath may stay (unfarm keeps the driver dir
# first) but is not needed: `unfarmFlags = [ "--add-driver-dir" ]` puts the
# driver dir (--driver-dir) first exactly in the objects that need a
# library it offers, the policy of unfarm's planner rather than every file.
#
# Output roles: findings in a build-time output are warnings (the build goes
# on), in a runtime output errors. Build-time: the outputs nixpkgs'
# multiple-outputs.sh names outputDev, outputInclude and `debug` (unless one
# is `out` or outputLib), and outputDoc, outputDevdoc, outputMan,
# outputDevman, outputInfo (unless one is `out`, outputLib or outputBin: man
# pages default to the bin output). Each is passed as --build-time. In a
# single-output package `out` holds everything and stays runtime.
#
# stdenv's patchELF (`patchelf --shrink-rpath`, a fixupOutputHook) knows
# nothing of dlopen and would drop the dirs a program dlopen()s from before we
# run. So when the hook is enabled it sets dontPatchELF=1 at the start of
# fixup and does that job itself: if the packager had not set dontPatchELF,
# `unfarm fix` runs with --drop-unused: entries outside farms that serve no
# need go, as under patchELF, but dlopen needs (declared, `.note.dlopen`,
# soname literals) count, and an object that imports dlopen without
# declaring what it opens keeps its entries; farms still expand. If they had
# set it, farms are only expanded.
# In check-only mode nothing shrinks at all.
#
# Ordering: RUNPATH hooks must run before us (autoPatchelfHook and
# autoAddDriverRunpath/removeStubsFromRunpathHook register themselves in
# postFixupHooks when their setup hooks are sourced). A hook sourced after
# ours would still land after us if we registered at source time, so we do
# not: at source time we only put a small function in preFixupHooks.
# preFixupHooks run at the start of fixupPhase, after every setup hook has
# been sourced and every attribute-set hook is in place; that function
# appends the real hook to postFixupHooks then, so it is the last entry and
# runs after all the others. runHook postFixup runs the package's own
# postFixup script before the hooks array, so a packager's postFixup edits
# are seen too.
#
# Inside setup.sh: `set -eu -o pipefail` and `shopt -s nullglob` hold, and
# every output name ($out, $lib, $bin, $dev, $debug, ...) is a variable, so
# every local here starts with `_unfarm` and no user pattern is ever left
# unquoted for the shell to glob.

# autoPatchelf mode's search dirs from the inputs, gathered for every
# package of the host platform as setup.sh runs env hooks (duplicates go
# at fixup). Harmless when the mode is off.
declare -ga unfarmAutoPatchelfLibs
unfarmGatherLibraries() {
    unfarmAutoPatchelfLibs+=("$1/lib")
}
if declare -F addEnvHooks >/dev/null; then
    # shellcheck disable=SC2154 # set by setup.sh while it sources hooks
    addEnvHooks "$targetOffset" unfarmGatherLibraries
fi

# The dirs under DIR... holding shared libraries, for autoPatchelf mode
# (autoPatchelfHook's interface; its own definition wins when both hooks
# are present, and both fill extraAutoPatchelfLibs).
if ! declare -F addAutoPatchelfSearchPath >/dev/null; then
    declare -ga extraAutoPatchelfLibs
    addAutoPatchelfSearchPath() {
        local -a _unfarmFind=()
        while [ $# -gt 0 ]; do
            case "$1" in
            --) shift; break ;;
            --no-recurse) shift; _unfarmFind+=(-maxdepth 1) ;;
            --*)
                echo "addAutoPatchelfSearchPath: unknown flag $1" >&2
                return 1
                ;;
            *) break ;;
            esac
        done
        local _unfarmDir
        while IFS= read -r -d '' _unfarmDir; do
            [[ "$_unfarmDir" == */* ]] && _unfarmDir=${_unfarmDir%/*} || _unfarmDir=.
            # Read against the caller's working dir (postInstall's, which
            # a pushd may have moved), not fixup's.
            [[ "$_unfarmDir" == /* ]] || _unfarmDir=$PWD/$_unfarmDir
            extraAutoPatchelfLibs+=("$_unfarmDir")
        done < <(find "$@" "${_unfarmFind[@]}" ! -type d \( -name '*.so' -o -name '*.so.*' \) -print0)
    }
fi

unfarmRegisterLast() {
    # Idempotent: appending twice would fix twice (harmless, but slow).
    local _unfarmHook
    for _unfarmHook in "${postFixupHooks[@]}"; do
        [ "$_unfarmHook" = unfarmPostFixup ] && return 0
    done
    postFixupHooks+=(unfarmPostFixup)
    if [ -z "${dontUnfarm-}" ]; then
        # Taken over from stdenv (see above); remembered for unfarmPostFixup.
        unfarmPatchELFWanted=
        [ -n "${dontPatchELF-}" ] || unfarmPatchELFWanted=1
        dontPatchELF=1
    fi
}

# unfarmAppendList TARGET NAME: append the words of variable NAME (a string,
# split on whitespace without globbing) or the elements of array NAME to the
# array TARGET, as setup.sh's concatTo does.
unfarmAppendList() {
    local -n _unfarmTarget="$1"
    local _unfarmDecl
    _unfarmDecl=$(declare -p "$2" 2>/dev/null) || return 0
    local -n _unfarmSource="$2"
    local -a _unfarmWords=()
    case "${_unfarmDecl#declare -}" in
    a*) _unfarmWords=("${_unfarmSource[@]}") ;;
    A*)
        echo "unfarm: $2 is an associative array; give a list of words" >&2
        return 1
        ;;
    *) read -r -d '' -a _unfarmWords <<<"$_unfarmSource" || true ;;
    esac
    _unfarmTarget+=("${_unfarmWords[@]}")
}

# unfarmRoleOutput VAR DEFAULT...: the output name in VAR (as set by
# multiple-outputs.sh), else the first DEFAULT that is an output (whose
# variable is non-empty), the way multiple-outputs.sh chooses it.
unfarmRoleOutput() {
    local _unfarmName
    if [ -n "${!1-}" ]; then
        echo "${!1}"
        return 0
    fi
    shift
    for _unfarmName in "$@"; do
        if [ -n "$_unfarmName" ] && [ -n "${!_unfarmName-}" ]; then
            echo "$_unfarmName"
            return 0
        fi
    done
    return 0
}

# unfarmBuildTimeOutputs NAME...: the names among NAME... that are
# build-time only (see "Output roles" above), one per line.
unfarmBuildTimeOutputs() {
    local _unfarmDev _unfarmInclude _unfarmLib _unfarmBinOut _unfarmMan _unfarmName _unfarmD
    _unfarmDev=$(unfarmRoleOutput outputDev dev out)
    _unfarmInclude=$(unfarmRoleOutput outputInclude "$_unfarmDev")
    _unfarmLib=$(unfarmRoleOutput outputLib lib out)
    _unfarmBinOut=$(unfarmRoleOutput outputBin bin out)
    _unfarmMan=$(unfarmRoleOutput outputMan man "$_unfarmBinOut")
    local -a _unfarmDevs=("$_unfarmDev" "$_unfarmInclude" debug)
    local -a _unfarmDocs=(
        "$(unfarmRoleOutput outputDoc doc out)"
        "$(unfarmRoleOutput outputDevdoc devdoc)"
        "$_unfarmMan"
        "$(unfarmRoleOutput outputDevman devman devdoc "$_unfarmMan")"
        "$(unfarmRoleOutput outputInfo info "$_unfarmBinOut")"
    )
    for _unfarmName in "$@"; do
        [ "$_unfarmName" = out ] || [ "$_unfarmName" = "$_unfarmLib" ] && continue
        for _unfarmD in "${_unfarmDevs[@]}"; do
            if [ "$_unfarmName" = "$_unfarmD" ]; then
                echo "$_unfarmName"
                continue 2
            fi
        done
        [ "$_unfarmName" = "$_unfarmBinOut" ] && continue
        for _unfarmD in "${_unfarmDocs[@]}"; do
            if [ "$_unfarmName" = "$_unfarmD" ]; then
                echo "$_unfarmName"
                continue 2
            fi
        done
    done
    return 0
}

# unfarmAutoPatchelfFlags FLAGS FIXONLY: autoPatchelf mode's flags for
# check and fix (FLAGS) and for fix only (FIXONLY: the interpreter).
unfarmAutoPatchelfFlags() {
    local -n _unfarmF="$1" _unfarmFix="$2"
    local -a _unfarmL=() _unfarmSeen=()
    local _unfarmX _unfarmY
    echo "unfarm: autoPatchelf mode: RUNPATHs from the inputs' library dirs"
    _unfarmL=("${unfarmAutoPatchelfLibs[@]}" ${extraAutoPatchelfLibs[@]+"${extraAutoPatchelfLibs[@]}"})
    for _unfarmX in "${_unfarmL[@]}"; do
        [ -d "$_unfarmX" ] || continue
        for _unfarmY in ${_unfarmSeen[@]+"${_unfarmSeen[@]}"}; do
            [ "$_unfarmX" = "$_unfarmY" ] && continue 2
        done
        _unfarmSeen+=("$_unfarmX")
        _unfarmF+=(--libs "$_unfarmX")
    done
    _unfarmL=()
    unfarmAppendList _unfarmL runtimeDependencies
    for _unfarmX in "${_unfarmL[@]}"; do _unfarmF+=(--runtime-dependency "$_unfarmX/lib"); done
    _unfarmL=()
    unfarmAppendList _unfarmL appendRunpaths
    for _unfarmX in "${_unfarmL[@]}"; do _unfarmF+=(--append-runpath "$_unfarmX"); done
    _unfarmL=()
    unfarmAppendList _unfarmL autoPatchelfIgnoreMissingDeps
    for _unfarmX in "${_unfarmL[@]}"; do
        # `autoPatchelfIgnoreMissingDeps = true` reaches us as 1: all.
        [ "$_unfarmX" = 1 ] && _unfarmX='*'
        _unfarmF+=(--ignore-missing "$_unfarmX")
    done
    if [ -n "${NIX_BINTOOLS-}" ] && [ -f "$NIX_BINTOOLS/nix-support/dynamic-linker" ]; then
        _unfarmX=$(<"$NIX_BINTOOLS/nix-support/dynamic-linker")
        _unfarmFix+=(--interpreter "$_unfarmX")
    else
        echo "unfarm: no \$NIX_BINTOOLS/nix-support/dynamic-linker: interpreters left as they are"
    fi
}

unfarmPostFixup() {
    if [ -n "${dontUnfarm-}" ]; then
        echo "unfarm: skipped (dontUnfarm is set)"
        return 0
    fi
    local _unfarmBin="${unfarmBin:-unfarm}"
    local -a _unfarmFlags=() _unfarmOuts=() _unfarmList=()
    local _unfarmX _unfarmOutput _unfarmShrink=
    unfarmAppendList _unfarmList unfarmDlopen
    for _unfarmX in "${_unfarmList[@]}"; do _unfarmFlags+=(--dlopen "$_unfarmX"); done
    _unfarmList=()
    unfarmAppendList _unfarmList unfarmKeep
    for _unfarmX in "${_unfarmList[@]}"; do _unfarmFlags+=(--keep "$_unfarmX"); done
    _unfarmList=()
    unfarmAppendList _unfarmList unfarmAllow
    for _unfarmX in "${_unfarmList[@]}"; do _unfarmFlags+=(--allow "$_unfarmX"); done
    unfarmAppendList _unfarmFlags unfarmFlags
    for _unfarmX in "${_unfarmFlags[@]}"; do
        [ "$_unfarmX" = --shrink ] && _unfarmShrink=1
    done
    if [ -n "${unfarmPatchELFWanted-}" ] && [ -z "${unfarmCheckOnly-}" ] && [ -z "$_unfarmShrink" ]; then
        echo "unfarm: dropping unused RUNPATH entries in stdenv's patchELF's place (dlopen-aware; dontPatchELF=1 to keep them)"
        _unfarmFlags+=(--drop-unused)
    fi
    local -a _unfarmFixOnly=()
    if [ -n "${unfarmAutoPatchelf-}" ] && [ -z "${dontAutoPatchelf-}" ]; then
        unfarmAutoPatchelfFlags _unfarmFlags _unfarmFixOnly || return 1
    fi
    local _unfarmNames
    if declare -F getAllOutputNames >/dev/null; then
        _unfarmNames=$(getAllOutputNames) # stdenv; also right with __structuredAttrs
    else
        _unfarmNames=${outputs:-out}
    fi
    for _unfarmOutput in $_unfarmNames; do
        [ -e "${!_unfarmOutput-}" ] && _unfarmOuts+=("${!_unfarmOutput}")
    done
    [ "${#_unfarmOuts[@]}" -gt 0 ] || return 0
    # shellcheck disable=SC2086 # output names are words
    for _unfarmOutput in $(unfarmBuildTimeOutputs $_unfarmNames); do
        if [ -e "${!_unfarmOutput-}" ]; then
            echo "unfarm: $_unfarmOutput is a build-time output: its findings are warnings"
            _unfarmFlags+=(--build-time "${!_unfarmOutput}")
        fi
    done
    if [ -z "${unfarmCheckOnly-}" ]; then
        echo "unfarm: fixing RUNPATHs in ${_unfarmOuts[*]}"
        # --no-sync: inside a build a crash discards the outputs anyway, and a
        # syncfs would wait for every other build writing to the same disk.
        if ! "$_unfarmBin" fix --no-sync "${_unfarmFlags[@]}" ${_unfarmFixOnly[@]+"${_unfarmFixOnly[@]}"} -- "${_unfarmOuts[@]}"; then
            echo "unfarm: 'unfarm fix' failed on ${_unfarmOuts[*]} (see above); set dontUnfarm=1 to skip, unfarmKeep/unfarmDlopen to steer it" >&2
            return 1
        fi
    fi
    echo "unfarm: checking ${_unfarmOuts[*]}"
    if ! "$_unfarmBin" check "${_unfarmFlags[@]}" -- "${_unfarmOuts[@]}"; then
        echo "unfarm: error findings remain in ${_unfarmOuts[*]} (see above); fix them, or set unfarmKeep/unfarmAllow/unfarmFlags, or dontUnfarm=1" >&2
        return 1
    fi
}

preFixupHooks+=(unfarmRegisterLast)
