#!/usr/bin/env bash
# Restore a Nexus Hub backup made by nexus-backup.sh: the database (pg_restore --clean
# --if-exists, in one transaction) and the data dir (untar).
#
#   nexus-restore.sh [--database-url URL] [--data-dir DIR] [--force] [--no-db] [--no-data] BACKUP
#
#   BACKUP            a folder written by nexus-backup.sh (db.dump, data.tar.gz, SHA256SUMS)
#   --database-url    target database (default: NEXUS_DATABASE_URL); it must exist. Objects
#                     of the backup that exist there are dropped and recreated.
#   --data-dir        target data dir (default: NEXUS_DATA_DIR, else /var/lib/nexus-hub)
#   --force           restore into a non-empty data dir: its current contents are first
#                     moved aside to DIR.pre-restore-<time>/ (nothing is deleted)
#   --no-db/--no-data restore only the other half
#
# Stop nexusd (and anything else using the database) first. The hub must run with the
# same NEXUS_API_KEY_SECRET as when the backup was taken, or no token will verify.
# The password in the URL is handed to pg_restore through PGPASSWORD, never on a
# command line. Exit: 0 ok, 1 failure, 2 usage.
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

db_url="${NEXUS_DATABASE_URL:-}"
data_dir="${NEXUS_DATA_DIR:-/var/lib/nexus-hub}"
force=0
with_db=1
with_data=1
backup=""

while [[ $# -gt 0 ]]; do
    case "$1" in
    --database-url) [[ $# -ge 2 ]] || usage; db_url="$2"; shift 2 ;;
    --data-dir) [[ $# -ge 2 ]] || usage; data_dir="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --no-db) with_db=0; shift ;;
    --no-data) with_data=0; shift ;;
    -h | --help) usage ;;
    -*) log "unknown argument: $1"; usage ;;
    *)
        [[ -z $backup ]] || usage
        backup="$1"
        shift
        ;;
    esac
done

[[ -n $backup ]] || usage
[[ -d $backup ]] || die "$backup is not a backup folder"
[[ $with_db -eq 1 || $with_data -eq 1 ]] || die "--no-db and --no-data: nothing to restore"
[[ -f $backup/SHA256SUMS ]] || die "$backup/SHA256SUMS missing: not a nexus-backup.sh folder"
for tool in sha256sum tar gzip; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

log "verifying checksums in $backup"
(cd "$backup" && sha256sum --check --quiet --strict SHA256SUMS) || die "checksum mismatch in $backup"

# Same as in nexus-backup.sh: the URL without its password, and the decoded password.
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

# Check everything before changing anything.
if [[ $with_db -eq 1 ]]; then
    [[ -f $backup/db.dump ]] || die "$backup/db.dump missing (use --no-db to restore only the data dir)"
    [[ -n $db_url ]] || die "no target database: pass --database-url or set NEXUS_DATABASE_URL"
    case "$db_url" in
    postgres://* | postgresql://*) ;;
    *) die "the target database must be a postgres:// URL" ;;
    esac
    command -v pg_restore >/dev/null 2>&1 || die "pg_restore not found (Debian: postgresql-client)"
    split_pg_url "$db_url"
    if [[ -n $PG_PASSWORD ]]; then
        export PGPASSWORD="$PG_PASSWORD"
    fi
fi
if [[ $with_data -eq 1 ]]; then
    [[ -f $backup/data.tar.gz ]] || die "$backup/data.tar.gz missing (use --no-data to restore only the database)"
    if [[ -e $data_dir && ! -d $data_dir ]]; then
        die "$data_dir exists and is not a directory"
    fi
    if [[ -d $data_dir ]] && [[ -n "$(find "$data_dir" -mindepth 1 -maxdepth 1 -print -quit)" ]] && [[ $force -ne 1 ]]; then
        die "$data_dir is not empty: refusing to overwrite it (pass --force to move its contents aside first)"
    fi
fi

if [[ $with_db -eq 1 ]]; then
    log "restoring the database into $PG_URL"
    pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction \
        --exit-on-error --dbname="$PG_URL" "$backup/db.dump"
fi

if [[ $with_data -eq 1 ]]; then
    umask 077
    mkdir -p "$data_dir"
    chmod 0700 "$data_dir"
    if [[ -n "$(find "$data_dir" -mindepth 1 -maxdepth 1 -print -quit)" ]]; then
        aside="${data_dir%/}.pre-restore-$(date -u +%Y%m%dT%H%M%SZ)"
        log "moving the current contents of $data_dir to $aside"
        mkdir -p "$aside"
        find "$data_dir" -mindepth 1 -maxdepth 1 -exec mv -t "$aside" -- {} +
    fi
    log "extracting the data dir into $data_dir"
    owner_flags=(--no-same-owner)
    if [[ $EUID -eq 0 ]]; then
        owner_flags=(--same-owner --numeric-owner)
    fi
    tar --extract --gzip --file="$backup/data.tar.gz" --directory="$data_dir" \
        --same-permissions "${owner_flags[@]}"
fi

log "restore complete from $backup"
