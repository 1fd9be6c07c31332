# shellcheck shell=bash
# unfarm setup hook: take symlink farms, dev, static and stub outputs out of
# the runtime closure by rewriting ELF RUNPATHs to the real `lib` outputs.
#
# Runs `unfarm fix` on every output, then `unfarm check`; the build fails when
# an error-level finding remains.
#
# Variables (set them in the derivation):
#   dontUnfarm=1        skip entirely
#   unfarmCheckOnly=1   only run `unfarm check` (fail on errors), write nothing
#   unfarmDlopen        sonames the package dlopen()s   -> --dlopen SONAME each
#   unfarmKeep          RUNPATH entries/globs to keep   -> --keep PATTERN each
#   unfarmFlags         extra flags for check and fix (e.g. --shrink, --system)
#   unfarmBin           the unfarm binary (default: `unfarm` from PATH)
#
# Ordering: RUNPATH hooks must run before us (autoPatchelfHook and
# autoAddDriverRunpath/removeStubsFromRunpathHook register themselves in
# postFixupHooks when their setup hooks are sourced; patchELF runs even earlier,
# in fixupOutputHooks). A hook sourced after ours would still land after us if
# we registered at source time, so we do not: at source time we only put a
# small function in preFixupHooks. preFixupHooks run at the start of
# fixupPhase, after every setup hook has been sourced and every attribute-set
# hook is in place; that function appends the real hook to postFixupHooks
# then, so it is the last entry and runs after all the others. runHook
# postFixup runs the package's own postFixup script before the hooks array,
# so a packager's postFixup edits are seen too.

unfarmRegisterLast() {
    # Idempotent: appending twice would fix twice (harmless, but slow).
    local h
    for h in "${postFixupHooks[@]}"; do
        [ "$h" = unfarmPostFixup ] && return 0
    done
    postFixupHooks+=(unfarmPostFixup)
}

unfarmPostFixup() {
    if [ -n "${dontUnfarm-}" ]; then
        echo "unfarm: skipped (dontUnfarm is set)"
        return 0
    fi
    local bin="${unfarmBin:-unfarm}"
    local -a flags=() outs=()
    local x output
    # shellcheck disable=SC2086 # word splitting intended: lists of sonames/patterns
    for x in ${unfarmDlopen-}; do flags+=(--dlopen "$x"); done
    # shellcheck disable=SC2086
    for x in ${unfarmKeep-}; do flags+=(--keep "$x"); done
    # shellcheck disable=SC2206
    flags+=(${unfarmFlags-})
    local names
    if declare -F getAllOutputNames >/dev/null; then
        names=$(getAllOutputNames) # stdenv; also right with __structuredAttrs
    else
        names=${outputs:-out}
    fi
    for output in $names; do
        [ -e "${!output}" ] && outs+=("${!output}")
    done
    [ "${#outs[@]}" -gt 0 ] || return 0
    if [ -z "${unfarmCheckOnly-}" ]; then
        echo "unfarm: fixing RUNPATHs in ${outs[*]}"
        if ! "$bin" fix "${flags[@]}" "${outs[@]}"; then
            echo "unfarm: 'unfarm fix' failed on ${outs[*]} (see above); set dontUnfarm=1 to skip, unfarmKeep/unfarmDlopen to steer it" >&2
            return 1
        fi
    fi
    echo "unfarm: checking ${outs[*]}"
    if ! "$bin" check "${flags[@]}" "${outs[@]}"; then
        echo "unfarm: error findings remain in ${outs[*]} (see above); fix them, or set unfarmKeep/unfarmFlags, or dontUnfarm=1" >&2
        return 1
    fi
}

preFixupHooks+=(unfarmRegisterLast)
