#!/usr/bin/env bash
# A real single-node Slurm cluster for tests/slurm (../shared/ENVIRONMENT.md): munge, slurmctld, slurmd from
# Debian's slurm-wlm 22.05, without systemd; two stand-in GPU devices in gres.conf. Idempotent: does nothing
# when the cluster already answers.
set -euo pipefail
log() { printf '[slurm] %s\n' "$*" >&2; }
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null; then
  log "apt-get install slurm-wlm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null
fi
if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  log "cluster up: $(sinfo -h -o '%P %D %t %G' | head -1)"
  exit 0
fi
mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /var/log/munge /var/lib/munge
chown munge: /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1k count=1 2>/dev/null; chown munge: /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || munged --force 2>/dev/null || munged --force
H=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=wb
SlurmctldHost=$H
AuthType=auth/munge
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ReturnToService=2
KillWait=2
OverTimeLimit=0
MinJobAge=300
NodeName=$H CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=$H Default=YES State=UP MaxTime=INFINITE
CONF
for i in 0 1; do [ -e /dev/wbgpu$i ] || mknod /dev/wbgpu$i c 1 3; done
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/wbgpu[0-1]\n' "$H" > /etc/slurm/gres.conf
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 50); do sinfo -h >/dev/null 2>&1 && break; sleep 0.2; done
scontrol update nodename="$H" state=resume 2>/dev/null || true
for _ in $(seq 50); do sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' && break; sleep 0.2; done
sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' || { log "the node did not come up:"; sinfo -N -l >&2; tail -20 /var/log/slurm/slurmctld.log >&2 2>/dev/null || true; exit 1; }
log "cluster up: $(sinfo -h -o '%P %D %t %G' | head -1)"
