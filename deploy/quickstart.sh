#!/usr/bin/env bash
# The README's quick start on Debian 12: installs whatever build and test
# packages are missing (quietly when nothing is), builds into ./build, then
#   deploy/quickstart.sh run [kanband flags...]   serves gRPC on 127.0.0.1:7300 and the web
#                                                 board on http://127.0.0.1:7380/ from ./data/kanban.db
#   deploy/quickstart.sh test                     runs the whole test suite with CTest
#                                                 (with short fuzz runs, built by clang in ./build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build pkg-config
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libsqlite3-dev libssl-dev prometheus-cpp-dev libmicrohttpd-dev libpq-dev
  libgtest-dev libgmock-dev
)
# The Python and Node clients' tests, systemd-analyze for the unit file's,
# openssl for the TLS tests' certificates and chromium for the web board's
# browser tests (test only: serving needs none). The Python client's tests
# pip-install it into a venv with Debian's setuptools and wheel, nothing from
# PyPI (client/python/README.md).
if [ "${1:-run}" = test ]; then
  packages+=(python3-grpcio python3-protobuf python3-venv python3-setuptools python3-wheel
             systemd openssl chromium)
  # The storage and service tests run against a private PostgreSQL 15 too
  # (tests/support/postgres_server.sh: initdb/pg_ctl, never the system service).
  packages+=(postgresql-15)
  # Several replicas behind Debian's nginx (tests/deploy/nginx_balancer_test.sh
  # runs its own nginx from the shipped config) and the compose file's check.
  packages+=(nginx python3-yaml)
  # The fuzz targets (tests/fuzz/): clang, and libFuzzer with the sanitizer runtimes.
  packages+=(clang libclang-rt-14-dev)
  # Callgrind counts the writer's instructions per create (tests/bench).
  packages+=(valgrind)
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "quickstart: installing ${missing[*]}" >&2
  # The tests start their own PostgreSQL; the package's default cluster (a
  # system service on port 5432) is not wanted.
  if [[ " ${missing[*]} " == *" postgresql-15 "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

mode="${1:-run}"
[ $# -gt 0 ] && shift
test_args=()
[ "$mode" = test ] && test_args=(-DKANBAN_FUZZ_BUILD_DIR="$PWD/build-fuzz")
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${test_args[@]}" >/dev/null
case "$mode" in
  run)
    # Only what serving needs: the tests and benchmarks take longer to build.
    cmake --build build -j"$(nproc)" --target kanband kanbanctl
    exec ./build/kanband --db=./data/kanban.db --http_listen=127.0.0.1:7380 "$@"
    ;;
  test)
    # The fuzz targets in their own clang build (sanitizers everywhere), just
    # what they need; CTest runs each briefly (tests/fuzz/README.md).
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_COMPILER=clang++ -DKANBAN_FUZZ=ON -DKANBAN_BUILD_TESTS=OFF >/dev/null
    cmake --build build-fuzz -j"$(nproc)" --target fuzzers
    cmake --build build -j"$(nproc)"
    exec ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
    ;;
  *)
    echo "usage: deploy/quickstart.sh run|test" >&2
    exit 2
    ;;
esac
