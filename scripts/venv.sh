# Sourced by scripts/test and scripts/check: which interpreter and venv the tests use.
#   GATEWAY_TEST_PYTHON unset: `python3` on PATH, venv .venv
#   GATEWAY_TEST_PYTHON=/usr/bin/python3 (any interpreter): venv .venv-<its version>, e.g.
#   .venv-3.11.2, made again if it was made by another interpreter of that version
# Sets: test_python (the interpreter), venv (the folder), and MYPY_CACHE_DIR for a non-default
# venv (its packages differ: numpy is locked per Python version).
if [ -n "${GATEWAY_TEST_PYTHON:-}" ]; then
  test_python=$GATEWAY_TEST_PYTHON
  if ! test_version=$("$test_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'); then
    echo "GATEWAY_TEST_PYTHON=$test_python: not a Python interpreter" >&2
    exit 2
  fi
  venv=.venv-$test_version
  export MYPY_CACHE_DIR=$venv/.mypy_cache
else
  test_python=python3
  venv=.venv
fi
