#!/usr/bin/env bash
# Nightly import of a customer export into Metrix, for cron.
#
#   30 2 * * * /opt/metrix/nightly-import.sh /etc/metrix/nightly.env || echo "metrix import failed: exit $?" | mail -s "metrix import" ops@example.com
#
# The env file (chmod 600: it holds the API key) sets:
#   METRIX_APP_ID, METRIX_API_KEY       credentials (never on the command line: `ps` shows it)
#   EXPORT                              the export to import, rewritten every night
#   MAPPING                             the column-mapping file
#   WORKDIR                             where state, logs, failures and summaries live
#   METRIX_ENDPOINT (optional)          defaults to https://entry.metrix.ir/
#   IMPORTER (optional)                 the command, defaults to metrix-import
#
# Exit codes are metrix-import's: 0 all sent, 1 some rows failed (see the failures
# file), 2 usage/mapping error, 3 input unreadable, 4 credentials or endpoint, 5 the
# previous night's run is still going, 130 interrupted.
set -euo pipefail

env_file=${1:?usage: nightly-import.sh ENV_FILE}
mode=$(stat -c %a "$env_file" 2>/dev/null || stat -f %Lp "$env_file")
if [ "${mode: -2}" != "00" ]; then
    echo "refusing to run: $env_file holds the API key but is readable by others (chmod 600 it)" >&2
    exit 2
fi
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
: "${EXPORT:?EXPORT is not set in $env_file}" "${MAPPING:?MAPPING is not set in $env_file}"
: "${WORKDIR:?WORKDIR is not set in $env_file}"
cd "$WORKDIR"
today=$(date +%F)
# --state makes a killed run resume and remembers what was delivered;
# --only-changed sends only new and changed users; no progress bar, log lines instead.
exec ${IMPORTER:-metrix-import} run "$EXPORT" --mapping "$MAPPING" \
    --state state.db --only-changed --no-progress --log-file import.log \
    --failures "failures-$today.csv" --summary-json "summary-$today.json"
