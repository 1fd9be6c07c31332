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
        if ! "$_unfarmBin" fix "${_unfarmFlags[@]}" "${_unfarmOuts[@]}"; then
            echo "unfarm: 'unfarm fix' failed on ${_unfarmOuts[*]} (see above); set dontUnfarm=1 to skip, unfarmKeep/unfarmDlopen to steer it" >&2
            return 1
        fi
    fi
    echo "unfarm: checking ${_unfarmOuts[*]}"
    if ! "$_unfarmBin" check "${_unfarmFlags[@]}" "${_unfarmOuts[@]}"; then
        echo "unfarm: error findings remain in ${_unfarmOuts[*]} (see above); fix them, or set unfarmKeep/unfarmAllow/unfarmFlags, or dontUnfarm=1" >&2
        return 1
    fi
}

preFixupHooks+=(unfarmRegisterLast)
