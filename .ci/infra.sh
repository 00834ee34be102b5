#!/usr/bin/env bash
# Installs and starts what the tests need on a fresh Debian 12 machine (root, package registries only):
# a Docker engine, local stand-ins for the public images the sample projects use, and the Debian
# registry binary the pull tests start on loopback. Idempotent: safe to run again on a warm machine.
set -euo pipefail
log() { printf '[infra] %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v git >/dev/null || need_pkgs+=(git)
command -v ip >/dev/null || need_pkgs+=(iproute2)
# the remote test env (tests/remote_hosts.py): a second dockerd on its own bridge with its own NAT/FORWARD rules, reached over ssh
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || need_pkgs+=(iptables)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
# deployments: the reverse proxy in front of each deployment (a caddy:2 stand-in built from Debian's binary)
command -v caddy >/dev/null || need_pkgs+=(caddy)
# notebook runs on the SSH test host and the Slurm cluster run as processes with the host's python3
/usr/bin/python3 -c 'import nbclient, ipykernel' 2>/dev/null || need_pkgs+=(python3-nbclient python3-ipykernel)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/lib/docker
  (setsid dockerd --data-root /var/lib/docker >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  docker version >/dev/null 2>&1 || { log "dockerd did not start:"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

cache=/var/cache/workbench-ci
mkdir -p "$cache"

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
  log "building busybox:latest from busybox-static"
  bb=$(mktemp -d)
  mkdir -p "$bb/bin" "$bb/tmp"
  cp /bin/busybox "$bb/bin/"
  for c in sh echo cat sleep ls head yes dd true false kill env mkdir rm; do ln -sf busybox "$bb/bin/$c"; done
  chmod 1777 "$bb/tmp"
  tar -C "$bb" -c . | docker import - busybox:latest >/dev/null
  rm -rf "$bb"
fi

if ! docker image inspect python:3.11-slim >/dev/null 2>&1; then
  if [ -s "$cache/python-3.11-slim.tar" ]; then
    log "loading python:3.11-slim from $cache"
    docker load -i "$cache/python-3.11-slim.tar" >/dev/null
  else
    log "building python:3.11-slim with debootstrap (about a minute)"
    root=$(mktemp -d)
    debootstrap --variant=minbase --include=python3-minimal,python3-pip,ca-certificates bookworm "$root" >/tmp/debootstrap.log 2>&1 \
      || { tail -20 /tmp/debootstrap.log >&2; exit 1; }
    rm -f "$root"/usr/lib/python3.11/EXTERNALLY-MANAGED
    ln -sf python3 "$root/usr/bin/python"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'CMD ["python3"]' - python:3.11-slim >/dev/null
    rm -rf "$root"
    docker save -o "$cache/python-3.11-slim.tar" python:3.11-slim
  fi
fi
if ! docker image inspect caddy:2 >/dev/null 2>&1; then
  log "building caddy:2 from Debian's caddy $(caddy version | cut -d' ' -f1)"
  cr=$(mktemp -d)
  mkdir -p "$cr/usr/bin" "$cr/etc/ssl/certs" "$cr/etc/caddy" "$cr/data" "$cr/config" "$cr/tmp"
  cp /usr/bin/caddy "$cr/usr/bin/caddy"
  for lib in $(ldd /usr/bin/caddy | grep -o '/[^ ]*'); do  # Debian builds it with cgo: libc, libzstd
    mkdir -p "$cr$(dirname "$lib")"; cp -L "$lib" "$cr$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$cr/etc/ssl/certs/"
  printf ':80\nrespond "caddy stand-in"\n' > "$cr/etc/caddy/Caddyfile"
  chmod 1777 "$cr/tmp"
  tar -C "$cr" -c . | docker import -c 'ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data PATH=/usr/bin' \
    -c 'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]' - caddy:2 >/dev/null
  rm -rf "$cr"
fi
log "docker ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
