#!/usr/bin/env bash
# Install the three real model servers used by the tests (tests/servers/plugin.py) and build
# their `linear` models:
#   TorchServe 0.12.0 (+ torch 2.13.0+cpu), Triton 2.51.0 (the tritonserver binary shipped in
#   nvidia-pytriton 0.7.0, Python backend) and MLServer 1.7.1 (+ mlserver-sklearn).
#
# Usage: bash tests/servers/setup.sh
# Target: ${GATEWAY_SERVERS_DIR:-$HOME/.cache/model-gateway/servers}
#   ts-venv/ tr-venv/ ml-venv/       one venv per server (their dependencies clash)
#   ts/model_store/                  linear.mar (1.0), linear-v2.mar (2.0)
#   triton/{models,backends}/        model repository + Python backend with the matching stub
#   mls/models/                      linear-v1/, linear-v2/ (settings.json is written per test run)
#   .stamp                           hash of this script + models/ + constraints-*.txt
#
# Idempotent: when the stamp matches, it returns in well under a second. Each venv also has its
# own stamp (constraints + requirements), so editing a model does not reinstall packages.
# Versions are pinned through constraints-{ts,tr,ml}.txt (pip freeze of a working install).
# Needs: python3 (3.11), java (17) for TorchServe, and Debian's libpython3.11 (the Triton
# Python-backend stub links libpython3.11.so.1.0).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=${GATEWAY_SERVERS_DIR:-$HOME/.cache/model-gateway/servers}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1

T_ALL=$EPOCHREALTIME
log() { echo "[servers-setup] $*" >&2; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
step() { # step NAME command...
  local name=$1 t0=$EPOCHREALTIME
  shift
  log "$name ..."
  "$@"
  log "$(printf '%-22s %6s s' "$name" "$(elapsed "$t0")")"
}
# pip prints one warning per package for an extra index that lacks it; drop that noise only.
quiet_pip() { "$@" 2>&1 | sed '/is neither a file nor a directory/d'; }

src_hash() { # keep in sync with plugin.py:_source_hash()
  (cd "$HERE" && find setup.sh models constraints-*.txt -type f ! -name '*.pyc' \
    ! -path '*/__pycache__/*' -print | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum \
    | cut -d' ' -f1)
}

PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYVER_FULL=$("$PY" -c 'import sys; print(sys.version.split()[0], sys.executable)')
SRC=$(src_hash)
STAMP_WANT=$(printf 'src=%s\npython=%s\n' "$SRC" "$PYVER_FULL")

mkdir -p "$S"
exec 9>"$S/.lock"
flock 9 # one setup at a time per servers dir

sentinels_ok() {
  local f
  for f in ts-venv/bin/torchserve ts/model_store/linear.mar ts/model_store/linear-v2.mar \
    tr-venv/bin/python triton/backends/python/triton_python_backend_stub \
    triton/models/linear/config.pbtxt ml-venv/bin/mlserver mls/models/linear-v2/model.joblib; do
    [[ -e $S/$f ]] || return 1
  done
}
if [[ -f $S/.stamp ]] && [[ "$(head -n 2 "$S/.stamp")" == "$STAMP_WANT" ]] && sentinels_ok; then
  log "up to date in $S (stamp ${SRC:0:12}); nothing to do ($(elapsed "$T_ALL") s)"
  exit 0
fi
log "building into $S (python $PYVER_FULL)"

# ---------- preflight: system packages ----------
apt_install() {
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    return 1
  fi
}
preflight() {
  if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -q "libpython$PYVER\.so\.1\.0"; then
    log "libpython$PYVER.so.1.0 is missing (the Triton Python-backend stub links it)"
    apt_install "libpython$PYVER" || {
      log "ERROR: run: apt-get install -y libpython$PYVER"
      exit 1
    }
  fi
  if ! command -v java >/dev/null && [[ -z ${JAVA_HOME:-} ]]; then
    log "java is missing (TorchServe's frontend is Java)"
    apt_install openjdk-17-jre-headless || {
      log "ERROR: run: apt-get install -y openjdk-17-jre-headless"
      exit 1
    }
  fi
}
step preflight preflight

# ---------- venvs ----------
make_venv() { # make_venv NAME CONSTRAINTS REQUIREMENT...
  local name=$1 cons=$HERE/$2 key
  shift 2
  key=$({ cat "$cons"; echo "$*"; echo "$PYVER_FULL"; } | sha256sum | cut -d' ' -f1)
  if [[ -f $S/$name/.gw-stamp && "$(cat "$S/$name/.gw-stamp")" == "$key" ]]; then
    log "  $name: up to date"
    return 0
  fi
  rm -rf "$S/$name"
  "$PY" -m venv "$S/$name"
  quiet_pip "$S/$name/bin/python" -m pip install -q -c "$cons" "$@"
  echo "$key" >"$S/$name/.gw-stamp"
}
# torch must be the local CPU build: plain "torch" would pull the CUDA build (GBs).
# pyyaml is an undeclared dependency of the TorchServe worker (pytorch/serve#2013).
step ts-venv make_venv ts-venv constraints-ts.txt "torch==2.13.0+cpu" torchserve==0.12.0 \
  torch-model-archiver==0.12.0 pyyaml numpy
step triton-venv make_venv tr-venv constraints-tr.txt nvidia-pytriton==0.7.0
# uvloop>=0.22 breaks MLServer 1.7.1's parallel workers (SeldonIO/MLServer#2286).
step mlserver-venv make_venv ml-venv constraints-ml.txt mlserver==1.7.1 mlserver-sklearn==1.7.1 \
  "uvloop<0.22"

# ---------- models ----------
build_torchserve() {
  local m=$HERE/models/torchserve b=$S/ts/build
  rm -rf "$S/ts"
  mkdir -p "$S/ts/model_store" "$b/v2"
  "$S/ts-venv/bin/python" "$m/make_model.py" "$b/v1.pt" 1
  "$S/ts-venv/bin/python" "$m/make_model.py" "$b/v2.pt" 2
  "$S/ts-venv/bin/torch-model-archiver" --model-name linear --version 1.0 \
    --serialized-file "$b/v1.pt" --handler "$m/handler.py" --export-path "$S/ts/model_store" --force
  # every version is its own .mar with the same model name
  "$S/ts-venv/bin/torch-model-archiver" --model-name linear --version 2.0 \
    --serialized-file "$b/v2.pt" --handler "$m/handler.py" --export-path "$b/v2" --force
  mv "$b/v2/linear.mar" "$S/ts/model_store/linear-v2.mar"
  rm -rf "$b"
}
build_triton() {
  local m=$HERE/models/triton t=$S/triton sp
  sp=$(echo "$S"/tr-venv/lib/python*/site-packages)
  rm -rf "$t"
  mkdir -p "$t/backends/python" "$t/models/linear/1" "$t/models/linear/2"
  cp "$sp/pytriton/tritonserver/backends/python/libtriton_python.so" \
    "$sp/pytriton/tritonserver/backends/python/triton_python_backend_utils.py" "$t/backends/python/"
  # the stub must match the venv's Python version
  cp "$sp/pytriton/tritonserver/python_backend_stubs/$PYVER/triton_python_backend_stub" \
    "$t/backends/python/"
  cp "$m/config.pbtxt" "$t/models/linear/"
  cp "$m/model.py" "$t/models/linear/1/"
  cp "$m/model.py" "$t/models/linear/2/"
  local missing
  missing=$(LD_LIBRARY_PATH=$sp/nvidia_pytriton.libs ldd "$t/backends/python/triton_python_backend_stub" \
    "$t/backends/python/libtriton_python.so" "$sp/pytriton/tritonserver/bin/tritonserver" \
    | grep 'not found' || true)
  if [[ -n $missing ]]; then
    log "ERROR: Triton libraries not found:"$'\n'"$missing"
    log "ERROR: for libpython run: apt-get install -y libpython$PYVER"
    exit 1
  fi
}
build_mlserver() {
  rm -rf "$S/mls"
  "$S/ml-venv/bin/python" "$HERE/models/mlserver/build_models.py" "$S/mls/models"
}
step torchserve-models build_torchserve
step triton-models build_triton
step mlserver-models build_mlserver

printf '%s\nbuilt=%s\n' "$STAMP_WANT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$S/.stamp.tmp"
mv "$S/.stamp.tmp" "$S/.stamp"
log "$(printf '%-22s %6s s' total "$(elapsed "$T_ALL")") -> $S"
