#!/usr/bin/env bash
# A Slurm job array that makes one dataset without Ray: array task I of N renders shard I/N of the
# views into one shared --out, then generates that shard's images there. See docs/cluster.md.
#
# Submit from the repository root (a checkout every node sees, with the same Python environment at
# the same path on every node), giving the shared dataset folder, the render options, and after a
# lone `--` the generate options:
#
#   sbatch --array=0-7 tools/slurm_array.sh /shared/runs/cars \
#       --cad-csv models.csv --cad-root /shared/ShapeNetCore.v2 --views 2500 -- --images-per-view 1
#
# Array ids must run 0..N-1: task I renders `--shard I/N`, N being the array's size
# (SLURM_ARRAY_TASK_COUNT), or DST3D_SHARDS when set. A shard is the views whose id hashes to I
# modulo N, so two shards never render or generate the same view, and all images of a view are
# made by the shard that rendered it. Every shard writes into the same folder: files are written
# to a temporary name and renamed, and annotations.jsonl and generations.jsonl are appended under
# an exclusive lock (flock on `.<name>.lock`), one write per batch, so the shards' records never
# interleave. The folder's file system must honour that lock across nodes (NFSv4 and Lustre with
# its flock mount option do; NFSv3 needs its lock manager).
#
# Resources per task: one GPU for generation, and CPU cores for the render workers (one Blender
# process per core, --workers set from --cpus-per-task; about 300 MB each, more for big meshes).
# The generate stage's worker runs on the task's GPU (Slurm sets CUDA_VISIBLE_DEVICES). Fetch the
# model weights once into a Hugging Face cache every node sees (HF_HOME) and set HF_HUB_OFFLINE=1,
# so that the tasks do not each download them.
#
# A failed or cancelled task is resumed by running the same task again: both stages skip what is
# complete and redo only what is missing, ending with the same files and records as a run that
# never stopped. `scontrol requeue <jobid>_<I>` does that, or submit the one task with the same N:
#
#   DST3D_SHARDS=8 sbatch --array=3 tools/slurm_array.sh /shared/runs/cars <the same options>
#
# Submitting the whole array again is safe as well: a finished shard ends at once.
#
# Environment: DST3D_PYTHON (default `python`: the interpreter with bpy, and torch + diffusers for
# the generate worker, or give the worker's own with `-- --python PATH`), DST3D_BATCH (default
# tools/dst3d_batch.py under the submit directory), DST3D_SHARDS (default the array's size).
#
#SBATCH --job-name=dst3d
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=dst3d-%A_%a.log

set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: sbatch --array=0-N tools/slurm_array.sh OUT [render options] [-- generate options]" >&2
    exit 2
fi
out=$1
shift
render_args=()
generate_args=()
while [[ $# -gt 0 && $1 != "--" ]]; do
    render_args+=("$1")
    shift
done
if [[ $# -gt 0 ]]; then
    shift
    generate_args=("$@")
fi

index=${SLURM_ARRAY_TASK_ID:?run this as a Slurm array task (sbatch --array=0-N)}
count=${DST3D_SHARDS:-${SLURM_ARRAY_TASK_COUNT:?Slurm did not set SLURM_ARRAY_TASK_COUNT; set DST3D_SHARDS}}
if ! [[ $index =~ ^[0-9]+$ && $count =~ ^[0-9]+$ ]] || ((index >= count)); then
    echo "slurm_array.sh: array task $index is not in 0..$((count - 1)); submit --array=0-$((count - 1))" >&2
    exit 2
fi
shard="$index/$count"
python=${DST3D_PYTHON:-python}
batch=${DST3D_BATCH:-${SLURM_SUBMIT_DIR:-.}/tools/dst3d_batch.py}
workers=${SLURM_CPUS_PER_TASK:-1}

echo "dst3d: shard $shard into $out on $(hostname), $workers render worker(s)"
status=0
# ${a[@]+"${a[@]}"}: an empty array under `set -u` is an error in bash before 4.4 (older clusters)
"$python" "$batch" render --out "$out" --shard "$shard" --workers "$workers" ${render_args[@]+"${render_args[@]}"} || status=$?
# 1: some models failed and the others were rendered, so their images are still made; 2 (a bad
# option or another dataset's settings) and 130 (interrupted) stop here.
if ((status != 0 && status != 1)); then
    exit "$status"
fi
gstatus=0
"$python" "$batch" generate --out "$out" --shard "$shard" ${generate_args[@]+"${generate_args[@]}"} || gstatus=$?
if ((gstatus != 0)); then
    exit "$gstatus"
fi
exit "$status"
