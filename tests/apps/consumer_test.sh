#!/usr/bin/env bash
# The embedding claim of docs/api.md, tested as a user would follow it: install the build into a
# scratch DESTDIR, build docs/consumer.cpp with only `pkg-config emergent` (no source tree), run
# it, and check that it prints the NTK of docs/conventions.md §2 for its two inputs.
#
# usage: consumer_test.sh BUILD_ROOT path/to/docs/consumer.cpp
set -euo pipefail

build=$(cd "$1" && pwd)
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/emergent_consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "consumer_test: FAIL: $*" >&2; exit 1; }

dest="$tmp/dest"
if ! meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log" >&2
  fail "meson install --destdir failed"
fi

pc=$(find "$dest" -name emergent.pc -print -quit)
[[ -n "$pc" ]] || fail "no emergent.pc was installed under $dest"
# The .pc file holds the configured prefix (e.g. /usr/local); relocate a copy into DESTDIR.
# (pkg-config --define-prefix guesses the prefix from the .pc location, which is wrong for a
# multiarch libdir such as lib/x86_64-linux-gnu, and --define-variable would also move eigen3.)
prefix=$(sed -n 's/^prefix=//p' "$pc")
[[ -n "$prefix" ]] || fail "$pc has no prefix= line"
mkdir -p "$tmp/pkgconfig"
sed "s|^prefix=.*|prefix=$dest$prefix|" "$pc" >"$tmp/pkgconfig/emergent.pc"
export PKG_CONFIG_PATH="$tmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

cflags=$(pkg-config --cflags emergent) || fail "pkg-config --cflags emergent"
libs=$(pkg-config --libs emergent) || fail "pkg-config --libs emergent"
libdir=$(pkg-config --variable=libdir emergent)
includedir=$(pkg-config --variable=includedir emergent)
[[ "$libdir" == "$dest"/* && "$includedir" == "$dest"/* ]] || fail "emergent.pc does not resolve inside $dest ($libdir, $includedir)"
[[ -f "$includedir/emergent/emergent.hpp" ]] || fail "header $includedir/emergent/emergent.hpp not installed"
ls "$libdir"/libemergent.* >/dev/null 2>&1 || fail "libemergent not installed in $libdir"
[[ " $cflags " == *" -I$includedir "* ]] || fail "pkg-config --cflags lacks -I$includedir: $cflags"

# shellcheck disable=SC2086  # word splitting of the pkg-config flags is intended
c++ -std=c++20 -O1 ${CXXFLAGS:-} "$src" $cflags $libs -o "$tmp/consumer" 2>"$tmp/compile.log" || {
  cat "$tmp/compile.log" >&2
  fail "docs/consumer.cpp does not compile against the installed package"
}
status=0
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/consumer" >"$tmp/out.txt" || status=$?
if ((status != 0)); then
  # A crash in free() here means the library and the consumer disagree on Eigen's ABI, typically
  # EIGEN_MAX_ALIGN_BYTES (64 when the library is built with -march=native on AVX-512, 16 by
  # default): emergent.pc's Cflags must carry the value the library was built with.
  fail "the consumer exited with status $status (cflags: $cflags)"
fi
echo "consumer output:"
cat "$tmp/out.txt"

# The installed command line runs too.
if [[ -x "$dest$prefix/bin/emergent" ]]; then
  LD_LIBRARY_PATH="$libdir" "$dest$prefix/bin/emergent" --version >/dev/null || fail "installed emergent --version"
fi

# Expected NTK of dense(512, w=1.5, b=0.1) relu dense(1) for x = (1,0,0), x' = (0.6,0.8,0)
# (docs/conventions.md §2): Σ⁰ = x·x'/3; Σ¹ = Θ¹ = W²Σ⁰ + B²; ReLU arc-cosine kernel (Cho & Saul 2009)
# Σ² = √(q q')/(2π)·(sin θ + (π − θ) cos θ), Θ² = (π − θ)/(2π)·Θ¹; readout Θ³ = Σ² + Θ².
awk '
  function ntk(a, b,   q1, q2, c, rho, th, pi, s2, t2) {
    pi = atan2(0, -1)
    q1 = 2.25 * dot(a, a) / 3 + 0.01; q2 = 2.25 * dot(b, b) / 3 + 0.01; c = 2.25 * dot(a, b) / 3 + 0.01
    rho = c / sqrt(q1 * q2); if (rho > 1) rho = 1
    th = atan2(sqrt(1 - rho * rho), rho)
    s2 = sqrt(q1 * q2) / (2 * pi) * (sin(th) + (pi - th) * cos(th))
    t2 = (pi - th) / (2 * pi) * c
    return s2 + t2
  }
  function dot(a, b) { return X[a, 1] * X[b, 1] + X[a, 2] * X[b, 2] + X[a, 3] * X[b, 3] }
  BEGIN { X[1, 1] = 1; X[1, 2] = 0; X[1, 3] = 0; X[2, 1] = 0.6; X[2, 2] = 0.8; X[2, 3] = 0 }
  NF > 0 {
    rows++
    if (NF != 2) { print "row " rows " has " NF " entries, expected 2"; bad = 1; next }
    for (j = 1; j <= 2; j++) {
      want = ntk(rows, j); got = $j + 0
      if ((got - want) ^ 2 > (1e-12 * want) ^ 2) { printf "NTK[%d,%d] = %.17g, expected %.17g\n", rows, j, got, want; bad = 1 }
    }
  }
  END { if (rows != 2) { print "expected 2 rows, got " rows; bad = 1 }; exit bad }
' "$tmp/out.txt" || fail "the consumer printed a wrong NTK"
echo "consumer_test: OK"
