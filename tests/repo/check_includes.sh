#!/bin/bash
# Who may know whom, as DESIGN.md's table states it, checked on every
# #include of the library folders (the build checks the same edges by
# linking: each folder's library links only what it may know, and the
# boundaries build in tests/run.sh links shared libraries with
# -Wl,--no-undefined, so a call across an undeclared edge fails there too):
#   core              core
#   model, optim,     core and itself; the model's own code knows no backend:
#   dist              only model/backend.c and the backends' folders
#                     (model/cpu/, model/cuda/) include them
#   io                core, model, optim (checkpoints serialise the
#                     optimizer), dist (parallel HDF5 through MPI-IO), io
#   launch            all of them
# and the outside libraries stay in their rooms: MPI in dist and io, HDF5
# in io, cJSON in io and launch, BLAS and OpenMP in the CPU backend,
# xxHash in core.
# Usage: check_includes.sh REPO_ROOT   (prints each violation; exit 1 if any)
set -u
root=${1:?usage: check_includes.sh REPO_ROOT}
cd "$root" || exit 1
fail=0
allowed_dirs() {
  case $1 in
  core) echo "core" ;;
  model) echo "core model" ;;
  optim) echo "core optim" ;;
  dist) echo "core dist" ;;
  io) echo "core model optim dist io" ;;
  launch) echo "core model optim dist io launch" ;;
  esac
}
# Outside headers: the folders (path prefixes) that may include each.
allowed_system() {
  case $1 in
  mpi.h) echo "dist/ io/" ;;
  hdf5.h) echo "io/" ;;
  cjson/cJSON.h) echo "io/ launch/" ;;
  cblas.h | omp.h) echo "model/cpu/" ;;
  xxhash.h) echo "core/" ;;
  nccl.h | cuda_runtime.h | cublas_v2.h | cublasLt.h) echo "model/cuda/ dist/" ;;
  *) echo "*" ;;
  esac
}
checked=0
while IFS= read -r file; do
  top=${file%%/*}
  checked=$((checked + 1))
  while IFS= read -r line; do
    num=${line%%:*}
    inc=${line#*:}
    if [[ $inc =~ \#include[[:space:]]*\"([a-z_]+)/([^\"]*)\" ]]; then
      dir=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
      if [[ " $(allowed_dirs "$top") " != *" $dir "* ]]; then
        echo "FAIL $file:$num includes $dir/$rest: $top may know only $(allowed_dirs "$top")"
        fail=1
      fi
      if [[ $dir == model && ( $rest == cpu/* || $rest == cuda/* ) && $file != model/backend.c &&
            $file != model/cpu/* && $file != model/cuda/* ]]; then
        echo "FAIL $file:$num includes model/$rest: only model/backend.c and the backends know a backend"
        fail=1
      fi
    elif [[ $inc =~ \#include[[:space:]]*\<([^\>]*)\> ]]; then
      sys=${BASH_REMATCH[1]} ok=0
      for prefix in $(allowed_system "$sys"); do
        [[ $prefix == "*" || $file == $prefix* ]] && ok=1
      done
      if [[ $ok == 0 ]]; then
        echo "FAIL $file:$num includes <$sys>: only $(allowed_system "$sys") may"
        fail=1
      fi
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$file")
done < <(find core model optim dist io launch -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | sort)
[[ $checked -gt 50 ]] || { echo "FAIL only $checked files found under the library folders"; fail=1; }
[[ $fail == 0 ]] && echo "includes: $checked files of core, model, optim, dist, io and launch keep to the allowed table"
exit $fail
