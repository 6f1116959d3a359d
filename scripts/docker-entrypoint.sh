#!/bin/sh
# Entry point of the coldstore image: runs `coldstore "$@"` as PUID:PGID (default 1000:1000) after making
# the cache folder theirs, so a bind-mounted ./cache created by Docker as root is writable. Started as a
# non-root user (`user:` in compose), it runs coldstore as that user unchanged. PUID=0 stays root: host
# backups that must read every file.
set -eu
cache=${COLDSTORE_CACHE_DIR:-/cache}
if [ "$(id -u)" = 0 ]; then
  uid=${PUID:-1000}
  gid=${PGID:-1000}
  case "$uid$gid" in *[!0-9]*) echo "coldstore-entrypoint: PUID and PGID must be numbers" >&2; exit 2 ;; esac
  mkdir -p "$cache"
  if [ "$uid" != 0 ]; then
    # Only the cache is written; /config and the source data are read (mount them read-only).
    if [ "$(stat -c %u:%g "$cache")" != "$uid:$gid" ]; then chown -R "$uid:$gid" "$cache"; fi
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups coldstore "$@"
  fi
fi
exec coldstore "$@"
