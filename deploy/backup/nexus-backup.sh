#!/usr/bin/env bash
# Back up a Nexus Hub: the Postgres database (pg_dump -Fc: tokens, zones, the file
# namespace and the small files kept inline) and the data dir (tar.gz: the blob store
# blobs/ with the larger files), into one dated folder per run, then prune old backups.
#
#   nexus-backup.sh [--backup-dir DIR] [--data-dir DIR] [--keep N] [--max-age-days D] [--no-data]
#
# Environment (flags win):
#   NEXUS_DATABASE_URL            postgres://user:pass@host:port/db   (required)
#   NEXUS_DATA_DIR                data dir to archive        (default /var/lib/nexus-hub)
#   NEXUS_BACKUP_DIR              where backups go           (default /var/backups/nexus-hub)
#   NEXUS_BACKUP_KEEP             keep the N newest backups  (default 14; 0 = no count limit)
#   NEXUS_BACKUP_MAX_AGE_DAYS     delete backups older than D days (default 30; 0 = never)
#   NEXUS_STORAGE_URL             the hub's blob store, when not the default blobs/ of the
#                                 data dir: such a store is NOT in the backup (a warning
#                                 says so); back it up on its own
#
# The database is dumped before the data dir is archived: every file row in the dump
# names a blob that was stored before the row was committed, and the collector removes
# only blobs unreferenced for NEXUS_STORAGE_GC_GRACE (1h), so a live hub's backup is
# consistent when the archive finishes within that grace period.
# Each run writes BACKUP_DIR/nexus-YYYYmmddTHHMMSSZ/ with db.dump, data.tar.gz and
# SHA256SUMS; a run that fails leaves no partial folder. The newest backup is never
# pruned. The password in the URL is handed to pg_dump through PGPASSWORD, never on a
# command line. Restore with nexus-restore.sh. Exit: 0 ok, 1 failure, 2 usage.
set -euo pipefail

PROG="$(basename "$0")"
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() {
    # The header comment above, without its leading '# '.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

backup_root="${NEXUS_BACKUP_DIR:-/var/backups/nexus-hub}"
data_dir="${NEXUS_DATA_DIR:-/var/lib/nexus-hub}"
keep="${NEXUS_BACKUP_KEEP:-14}"
max_age_days="${NEXUS_BACKUP_MAX_AGE_DAYS:-30}"
with_data=1

while [[ $# -gt 0 ]]; do
    case "$1" in
    --backup-dir) [[ $# -ge 2 ]] || usage; backup_root="$2"; shift 2 ;;
    --data-dir) [[ $# -ge 2 ]] || usage; data_dir="$2"; shift 2 ;;
    --keep) [[ $# -ge 2 ]] || usage; keep="$2"; shift 2 ;;
    --max-age-days) [[ $# -ge 2 ]] || usage; max_age_days="$2"; shift 2 ;;
    --no-data) with_data=0; shift ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
    esac
done

[[ $keep =~ ^[0-9]+$ ]] || die "--keep must be a whole number, got '$keep'"
[[ $max_age_days =~ ^[0-9]+$ ]] || die "--max-age-days must be a whole number, got '$max_age_days'"
db_url="${NEXUS_DATABASE_URL:-}"
[[ -n $db_url ]] || die "NEXUS_DATABASE_URL is not set"
case "$db_url" in
postgres://* | postgresql://*) ;;
sqlite:*) die "embedded (SQLite) hub: stop it and copy its data dir instead (the database is in it)" ;;
*) die "NEXUS_DATABASE_URL must be a postgres:// URL" ;;
esac
for tool in pg_dump tar gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: postgresql-client, tar, gzip, coreutils)"
done
if [[ $with_data -eq 1 ]]; then
    [[ -d $data_dir ]] || die "data dir $data_dir does not exist (use --data-dir or --no-data)"
fi

# File contents over the inline limit live in the blob store: by default blobs/ of the
# data dir, which the archive holds. Say so loudly when they live elsewhere.
storage="${NEXUS_STORAGE_URL:-}"
if [[ $with_data -eq 0 ]]; then
    log "warning: --no-data: the blob store (blobs/ of the data dir by default) is NOT in this backup"
elif [[ -n $storage ]]; then
    case "$storage" in
    file://*)
        blobs_dir="${storage#file://}"
        blobs_dir="${blobs_dir%%\?*}"
        case "${blobs_dir%/}/" in
        "${data_dir%/}"/*) ;;
        *) log "warning: the blob store $blobs_dir is outside the data dir and NOT in this backup: archive it too" ;;
        esac
        ;;
    *) log "warning: the blob store (NEXUS_STORAGE_URL, not a local directory) is NOT in this backup: back it up on its own (bucket versioning or replication)" ;;
    esac
fi

# Splits a postgres URL into one without its password (PG_URL) and the percent-decoded
# password (PG_PASSWORD), so that the password never appears in `ps`.
split_pg_url() {
    local url="$1" scheme rest authority tail userinfo hostport user pass=""
    scheme="${url%%://*}"
    rest="${url#*://}"
    authority="${rest%%[/?]*}"
    tail="${rest#"$authority"}"
    if [[ $authority == *@* ]]; then
        userinfo="${authority%@*}"
        hostport="${authority##*@}"
        user="${userinfo%%:*}"
        [[ $userinfo == *:* ]] && pass="${userinfo#*:}"
        PG_URL="${scheme}://${user}@${hostport}${tail}"
    else
        PG_URL="$url"
    fi
    PG_PASSWORD="$(printf '%b' "${pass//%/\\x}")"
}
split_pg_url "$db_url"
if [[ -n $PG_PASSWORD ]]; then
    export PGPASSWORD="$PG_PASSWORD"
fi

umask 077
mkdir -p "$backup_root"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
name="nexus-$stamp"
n=1
while [[ -e $backup_root/$name ]]; do
    name="nexus-$stamp-$n"
    n=$((n + 1))
done
final="$backup_root/$name"
work="$backup_root/.$name.partial"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

log "dumping the database to $final/db.dump"
pg_dump --format=custom --no-owner --no-privileges --file="$work/db.dump" --dbname="$PG_URL"

if [[ $with_data -eq 1 ]]; then
    log "archiving $data_dir to $final/data.tar.gz"
    rc=0
    # Exit 1 from GNU tar means a file changed while it was read (the hub is live);
    # the archive is still complete. Anything above 1 is fatal.
    tar --create --gzip --file="$work/data.tar.gz" --numeric-owner \
        --warning=no-file-changed --warning=no-file-removed \
        --directory="$data_dir" . || rc=$?
    [[ $rc -le 1 ]] || die "tar failed (exit $rc)"
fi

(cd "$work" && sha256sum -- * >SHA256SUMS)
mv "$work" "$final"
trap - EXIT
log "backup complete: $final"

# --- retention -----------------------------------------------------------------------

mapfile -t backups < <(find "$backup_root" -mindepth 1 -maxdepth 1 -type d -name 'nexus-*' -printf '%f\n' | sort -r)
newest="${backups[0]}"
if [[ $keep -gt 0 && ${#backups[@]} -gt $keep ]]; then
    for old in "${backups[@]:$keep}"; do
        log "pruning $backup_root/$old (keeping the $keep newest)"
        rm -rf -- "${backup_root:?}/$old"
    done
fi
if [[ $max_age_days -gt 0 ]]; then
    while IFS= read -r old; do
        [[ $old == "$newest" ]] && continue
        log "pruning $backup_root/$old (older than $max_age_days days)"
        rm -rf -- "${backup_root:?}/$old"
    done < <(find "$backup_root" -mindepth 1 -maxdepth 1 -type d -name 'nexus-*' -mtime "+$((max_age_days - 1))" -printf '%f\n')
fi
printf '%s\n' "$final"
