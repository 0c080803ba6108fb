#!/usr/bin/env bash
# What can be checked of deploy/Dockerfile without a Docker engine:
#   1. every package named in its BUILD_PACKAGES and RUNTIME_PACKAGES exists
#      in Debian (apt-cache knows it);
#   2. every shared library that the built kanband and kanbanctl load (ldd)
#      belongs to a package (dpkg -S) that the runtime image has: one of
#      RUNTIME_PACKAGES or their dependencies, or debian:bookworm-slim's own
#      base (Essential and Priority: required packages, apt, and their
#      dependencies).
# Assumes the build machine is the Debian release the Dockerfile names, as
# deploy/quickstart.sh does. Exits 77 (ctest SKIP_RETURN_CODE) without dpkg.
# Usage: runtime_packages_test.sh DOCKERFILE BINARY...
set -euo pipefail

dockerfile="$1"
shift

for tool in dpkg dpkg-query apt-cache ldd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not available; this check needs a Debian system"
    exit 77
  fi
done

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The value of `ARG NAME="..."` in the Dockerfile.
arg_value() {
  sed -n -E "s/^ARG $1=\"(.*)\"\$/\\1/p" "$dockerfile"
}
build_packages="$(arg_value BUILD_PACKAGES)"
runtime_packages="$(arg_value RUNTIME_PACKAGES)"
[ -n "$build_packages" ] || fail "no ARG BUILD_PACKAGES=\"...\" line in $dockerfile"
[ -n "$runtime_packages" ] || fail "no ARG RUNTIME_PACKAGES=\"...\" line in $dockerfile"

# ---- 1: the names exist. -------------------------------------------------------

# One call: each apt-cache run reads the whole package cache (seconds).
known="$(apt-cache show --no-all-versions $build_packages $runtime_packages 2>/dev/null |
  sed -n 's/^Package: //p')" || true
for package in $build_packages $runtime_packages; do
  grep -qxF "$package" <<<"$known" ||
    fail "Debian has no package \"$package\" (named in $dockerfile)"
done

# ---- 2: the libraries are covered. ---------------------------------------------

# Every package that installing $@ brings in: the packages and their
# (pre-)dependencies, recursively.
closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
    grep -E '^[a-z0-9]' | sed 's/:.*//' | sort -u
}
runtime_closure="$(closure $runtime_packages)"
base_seeds="apt $(dpkg-query -W -f '${Package} ${Essential} ${Priority}\n' |
  awk '$2 == "yes" || $3 == "required" { print $1 }' | tr '\n' ' ')"
base_closure="$(closure $base_seeds)"

# Every library the binaries load: "libfoo.so.1 => /lib/.../libfoo.so.1
# (0x...)" lines, and the loader's own "/lib64/ld-linux-x86-64.so.2 (0x...)".
libraries=""
for binary in "$@"; do
  [ -x "$binary" ] || { fail "$binary is not an executable"; continue; }
  ldd_output="$(ldd "$binary")"
  if grep -q 'not found' <<<"$ldd_output"; then
    fail "$binary: unresolved libraries: $(grep 'not found' <<<"$ldd_output")"
  fi
  libraries+="$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
                  <<<"$ldd_output")"$'\n'
done
libraries="$(grep . <<<"$libraries" | sort -u)" || true
[ -n "$libraries" ] || fail "ldd listed no libraries at all for: $*"

# Their owners, from one dpkg call (each takes about half a second). ldd may
# print /lib/... where dpkg registered /usr/lib/... (merged /usr), or a
# symlink: ask for every variant.
declare -A owner_of=()
candidates=()
for library in $libraries; do
  candidates+=("$library" "/usr$library" "${library#/usr}" "$(realpath "$library")")
done
while IFS= read -r line; do
  # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1"
  owner_of["${line#*: }"]="$(sed 's/[:,].*//' <<<"${line%%: *}")"
done < <(dpkg -S "${candidates[@]}" 2>/dev/null | grep -E '^[^ ]+: /')

for library in $libraries; do
  package=""
  for candidate in "$library" "/usr$library" "${library#/usr}" "$(realpath "$library")"; do
    package="${owner_of[$candidate]-}"
    [ -n "$package" ] && break
  done
  if [ -z "$package" ]; then
    fail "no Debian package owns $library"
  elif ! grep -qx "$package" <<<"$runtime_closure" &&
       ! grep -qx "$package" <<<"$base_closure"; then
    fail "$library comes from $package, which the runtime image does not install:" \
      "add it to RUNTIME_PACKAGES"
  fi
done

if [ "$failures" -gt 0 ]; then
  echo "$failures problem(s) with the packages in $dockerfile" >&2
  exit 1
fi
echo "ok: $(wc -w <<<"$build_packages $runtime_packages") package names exist;" \
  "the $(wc -l <<<"$libraries") libraries of $# binaries come with: $runtime_packages" \
  "(+ their dependencies and the slim base)"
