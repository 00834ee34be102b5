#!/usr/bin/env bash
# A real single-node Slurm cluster for tests/execution/backends/test_slurm.py (../shared/ENVIRONMENT.md):
# munge, slurmctld, slurmd from Debian's slurm-wlm 22.05, without systemd; two stand-in GPU devices in gres.conf;
# accounting through slurmdbd on a local MariaDB, so `sacct` answers as on a real site. Idempotent: does nothing
# when the cluster and its accounting already answer.
set -euo pipefail
log() { printf '[slurm] %s\n' "$*" >&2; }
accounted() { scontrol show config 2>/dev/null | grep '^AccountingStorageType *= accounting_storage/slurmdbd' >/dev/null; }  # no -q: pipefail
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
   || ! command -v mariadbd >/dev/null; then
  log "apt-get install slurm-wlm slurmdbd mariadb-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd mariadb-server >/dev/null
fi
if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)' && accounted && sacct -n -X -j 1 >/dev/null 2>&1; then
  log "cluster up: $(sinfo -h -o '%P %D %t %G' | head -1), accounting through slurmdbd"
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ReturnToService=2
KillWait=2
OverTimeLimit=0
MinJobAge=10  # squeue forgets a job 10–20 s after it ended (sites: 60–300 s); the tests see sacct asked
NodeName=$H CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=$H Default=YES State=UP MaxTime=INFINITE
CONF
# accounting: MariaDB (its own socket, no network) → slurmdbd → slurmctld
mkdir -p /run/mysqld && chown mysql: /run/mysqld
if ! mysqladmin ping --silent >/dev/null 2>&1; then
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  (setsid mariadbd --user=mysql --skip-networking > /var/log/slurm/mariadb.log 2>&1 &)
  for _ in $(seq 150); do mysqladmin ping --silent >/dev/null 2>&1 && break; sleep 0.2; done
  mysqladmin ping --silent >/dev/null 2>&1 || { log "MariaDB did not start:"; tail -20 /var/log/slurm/mariadb.log >&2; exit 1; }
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'wb-slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=wb-slurm
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf
pgrep -x slurmdbd >/dev/null || slurmdbd
for _ in $(seq 300); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done  # first start: schema
sacctmgr -n list cluster >/dev/null 2>&1 || { log "slurmdbd does not answer:"; tail -20 /var/log/slurm/slurmdbd.log >&2; exit 1; }
sacctmgr -n list cluster format=cluster | grep -w wb >/dev/null || sacctmgr -i add cluster wb >/dev/null
for i in 0 1; do [ -e /dev/wbgpu$i ] || mknod /dev/wbgpu$i c 1 3; done
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/wbgpu[0-1]\n' "$H" > /etc/slurm/gres.conf
if pgrep -x slurmctld >/dev/null && ! accounted; then
  # started earlier by this script without accounting: the storage type is read only at start
  pkill -x slurmctld || true; for _ in $(seq 150); do pgrep -x slurmctld >/dev/null || break; sleep 0.2; done
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 50); do sinfo -h >/dev/null 2>&1 && break; sleep 0.2; done
scontrol update nodename="$H" state=resume 2>/dev/null || true
for _ in $(seq 50); do sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' && break; sleep 0.2; done
sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' || { log "the node did not come up:"; sinfo -N -l >&2; tail -20 /var/log/slurm/slurmctld.log >&2 2>/dev/null || true; exit 1; }
for _ in $(seq 50); do accounted && sacct -n -X -j 1 >/dev/null 2>&1 && break; sleep 0.2; done
accounted && sacct -n -X -j 1 >/dev/null || { log "accounting does not answer:"; tail -20 /var/log/slurm/slurmdbd.log >&2; exit 1; }
log "cluster up: $(sinfo -h -o '%P %D %t %G' | head -1), accounting through slurmdbd"
