"""The page, rendered on the server. Every text from a file, a mapping or a run goes
through ``h`` (HTML-escaped) and sits in an element with ``dir="auto"``, so a cell
``<script>`` or ``=HYPERLINK(...)`` shows as text and Persian reads right to left."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from importer import __version__
from importer.ui.mapping_doc import (
    CUSTOM,
    CUSTOM_TYPES,
    FORMAT_EXAMPLES,
    PHONE_FORMATS,
    Choice,
    targets,
)
from importer.ui.workspace import Workspace


def h(value: Any) -> str:
    return escape(str(value), quote=True)


def page(ws: Workspace) -> str:
    body = [_header(), _error(ws), _open_section(ws)]
    if ws.table is not None:
        body += [_columns_section(ws), _preview_section(ws), _save_section(ws),
                 _run_section(ws), _results_section(ws)]  # fmt: skip
    return _document("metrix-import", "\n".join(body))


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{h(title)}</title><link rel="stylesheet" href="/static/app.css">'
        '<link rel="icon" href="/static/icon.svg">'
        '<script src="/static/app.js" defer></script></head>'
        f"<body>{body}</body></html>"
    )


def _header() -> str:
    return (
        "<header><h1>metrix-import</h1><p>Spreadsheet → Metrix user profiles. Open a file, "
        "match its columns, check what will be sent, save the mapping, import. "
        f'<span class="muted">v{h(__version__)}</span></p></header>'
    )


def _error(ws: Workspace) -> str:
    if not ws.error:
        return ""
    text, ws.error = ws.error, ""
    return f'<p class="error" role="alert" id="error" dir="auto">{h(text)}</p>'


def _open_section(ws: Workspace) -> str:
    parts = [
        '<section id="open"><h2>1. Open a file</h2>',
        '<form method="post" action="/open" enctype="multipart/form-data" id="open-form">',
        '<label class="drop" id="drop">Drop a CSV, TSV, TXT (gzip too) or XLSX file here, or '
        '<input type="file" name="file" id="file" accept=".csv,.tsv,.txt,.gz,.xlsx,.xlsm">'
        "</label>",
        "<p>or the path of a file on this machine (for files too big to upload; it is only "
        'read): <input type="text" name="path" id="path" size="50">',
        ' <button type="submit" id="open-button">Open</button></p></form>',
    ]
    table = ws.table
    if table is not None:
        summary = ws.validation_summary()
        rows = f"{summary['rows_total']:,}" if summary else "counting…"
        s = ws.settings
        sheet = ""
        if len(table.sheets) > 1:
            options = "".join(
                f"<option{' selected' if name == table.sheet else ''}>{h(name)}</option>"
                for name in table.sheets
            )
            sheet = f'<label>sheet <select name="sheet" id="sheet">{options}</select></label>'
        delimiters = [("auto", "auto"), (",", "comma"), (";", "semicolon"), ("\t", "tab"),
                      ("|", "pipe")]  # fmt: skip
        delimiter = "".join(
            f'<option value="{h(v)}"{" selected" if v == s.delimiter else ""}>{h(n)}</option>'
            for v, n in delimiters
        )
        parts.append(
            f'<p class="detected">Opened <span dir="auto" id="file-name">{h(table.description)}'
            f"</span>; header on row {s.header_row}; "
            f'<span id="row-count">{h(rows)}</span> data rows.</p>'
            '<form method="post" action="/settings" class="settings">'
            f'<label>encoding <input name="encoding" value="{h(s.encoding)}" size="12"></label> '
            f'<label>delimiter <select name="delimiter">{delimiter}</select></label> '
            f'<label>header row <input name="header_row" type="number" min="1" '
            f'value="{s.header_row}" size="4"></label> {sheet}'
            ' <button type="submit">Read again</button></form>'
        )
    parts.append("</section>")
    return "".join(parts)


def _columns_section(ws: Workspace) -> str:
    assert ws.table is not None and ws.doc is not None
    sample = ws.sample
    summary = ws.validation_summary()
    file_failures = _by_column(summary["reasons"]) if summary else {}
    rows = []
    for index, choice in enumerate(ws.doc.columns):
        cells = [row[index] if index < len(row) else "" for row in ws.table.sample[:3]]
        check = sample.columns.get(choice.column) if sample else None
        converted = "".join(
            f'<li dir="auto">{h(v)}</li>' for v in (check.converted if check else [])
        )
        fails = ""
        if check is not None and choice.target != "ignore":
            reasons = "".join(
                f'<li dir="auto">{n} × {h(r)}</li>' for r, n in check.reasons.most_common(3)
            )
            whole = file_failures.get(choice.column)
            whole_text = (
                f'<div class="whole">whole file: <b class="file-fails">{whole:,}</b></div>'
                if whole is not None
                else ('<div class="whole">whole file: <b class="file-fails">0</b></div>'
                      if summary else "")
            )  # fmt: skip
            fails = (
                f'<b class="fails{" bad" if check.failures else ""}">{check.failures:,}</b> of '
                f"{sample.rows:,} sampled" + (f"<ul>{reasons}</ul>" if reasons else "") + whole_text
                if sample
                else ""
            )
        marked = " check" if choice.check else ""
        note = (
            f'<div class="check-note" dir="auto">CHECK: {h(choice.check)}</div>'
            if choice.check
            else ""
        )
        rows.append(
            f'<tr class="col{marked}" data-column="{h(choice.column)}">'
            f'<th dir="auto">{h(choice.column)}</th>'
            f'<td><ul class="cells">{"".join(f"<li dir=auto>{h(c)}</li>" for c in cells)}</ul></td>'
            f"<td>{_target_controls(index, choice)}{note}</td>"
            f'<td><ul class="converted">{converted}</ul></td><td>{fails}</td></tr>'
        )
    problem = (
        f'<p class="error" id="mapping-problem" dir="auto">{h(ws.mapping_problem)}</p>'
        if ws.mapping_problem
        else ""
    )
    return (
        '<section id="columns"><h2>2. Match columns</h2>'
        "<p>One line per column of the file: a few cells, what it becomes, the cells as they "
        "would be sent, and how many rows fail on it. Lines marked CHECK need a look.</p>"
        f"{problem}{_validation_bar(ws)}"
        '<form method="post" action="/mapping" id="mapping-form">'
        '<table class="columns"><thead><tr><th>column</th><th>sample cells</th>'
        "<th>becomes</th><th>converted</th><th>rows failing</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<datalist id="formats">'
        + "".join(f'<option value="{h(f)}">' for f in FORMAT_EXAMPLES)
        + '</datalist><button type="submit" id="apply">Apply</button></form></section>'
    )


def _target_controls(index: int, choice: Choice) -> str:
    options = "".join(
        f'<option value="{h(v)}"{" selected" if v == choice.target else ""}>{h(label)}</option>'
        for v, label in targets()
    )
    out = [f'<select name="target_{index}" class="target">{options}</select>']
    if choice.target == CUSTOM:
        types = "".join(
            f"<option{' selected' if t == choice.type else ''}>{t}</option>" for t in CUSTOM_TYPES
        )
        out.append(
            f'<label>key <input name="key_{index}" value="{h(choice.key)}" size="14"></label>'
            f'<label>type <select name="type_{index}" class="type">{types}</select></label>'
        )
    if choice.is_phone:
        formats = "".join(
            f"<option{' selected' if f == choice.format else ''}>{f}</option>"
            for f in PHONE_FORMATS
        )
        out.append(
            f'<label>phone format <select name="format_{index}">{formats}</select></label>'
            f'<label>country <input name="region_{index}" value="{h(choice.region)}" size="3" '
            'placeholder="IR"></label>'
        )
    elif choice.takes_format:
        out.append(
            f'<label>format <input name="format_{index}" value="{h(choice.format)}" '
            'list="formats" size="18" class="format"></label>'
        )
    return "".join(out)


def _by_column(reasons: dict[str, int]) -> dict[str, int]:
    from importer.ui.engine_bridge import failures_by_column

    return failures_by_column(reasons)


def _validation_bar(ws: Workspace) -> str:
    summary = ws.validation_summary()
    link = ""
    if summary is not None:
        text = (
            f"Whole file checked: {summary['rows_total']:,} rows, "
            f"{summary['rows_valid']:,} valid, {summary['rows_invalid']:,} invalid."
        )
        value = 1.0
        link = ' <a href="/validation/report" target="_blank" id="validation-report">report</a>'
    elif ws.validation is not None and ws.validation.status.get("state") == "error":
        text, value = "Checking the whole file failed: " + ws.validation.status["error"], 0.0
    elif ws.validation is not None:
        text, value = "Checking every row of the file…", 0.0
    else:
        text, value = "", 0.0
    state = ws.validation.status.get("state", "") if ws.validation is not None else ""
    return (
        f'<div id="validation" class="bar" data-state="{h(state)}">'
        '<progress id="validation-progress" max="1" '
        f'value="{value}"></progress> <span id="validation-text" dir="auto">{h(text)}</span>'
        f"{link}</div>"
    )


def _preview_section(ws: Workspace) -> str:
    sample = ws.sample
    bodies = "".join(
        f'<pre class="body" dir="ltr">{h(_pretty(b))}</pre>'
        for b in (sample.bodies if sample else [])
    )
    picked = ""
    if ws.picked is not None:
        row, body, problem = ws.picked
        shown = (
            f'<pre class="body" id="picked-body">{h(_pretty(body))}</pre>'
            if body
            else f'<p class="error" id="picked-problem" dir="auto">{h(problem)}</p>'
        )
        picked = f"<h3>Row {row}</h3>{shown}"
    invalid = "".join(
        f'<tr><td class="n">{h(row)}</td><td dir="auto">{h(error)}</td></tr>'
        for row, error in ws.invalid_rows()
    )
    invalid_table = (
        f'<h3>Invalid rows (whole file)</h3><table id="invalid">{invalid}</table>'
        if invalid
        else ""
    )
    return (
        '<section id="preview"><h2>3. Preview</h2>'
        "<p>The exact request bodies of sampled rows (the message id and time depend on the "
        "run's start when the mapping has no time column):</p>"
        f"{bodies}"
        '<form method="post" action="/preview" class="inline">Show row '
        '<input type="number" name="row" min="1" size="6" id="row-number"> '
        '<button type="submit" id="show-row">Show</button></form>'
        f"{picked}{invalid_table}</section>"
    )


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def _save_section(ws: Workspace) -> str:
    disabled = " disabled" if ws.mapping_problem else ""
    return (
        '<section id="save"><h2>4. Save the mapping</h2>'
        "<p>The YAML file the command line runs: "
        f'<a href="/mapping.yaml" download="mapping.yaml" id="download-mapping"{disabled}>'
        "download mapping.yaml</a>.</p>"
        f'<details><summary>Show it</summary><pre id="mapping-text" dir="auto">'
        f"{h(ws.mapping_text)}</pre></details>"
        '<form method="post" action="/mapping/load" enctype="multipart/form-data" class="inline">'
        'Or load a mapping you have: <input type="file" name="mapping" accept=".yaml,.yml" '
        'id="mapping-file"> <button type="submit">Load</button></form></section>'
    )


def _run_section(ws: Workspace) -> str:
    creds = ws.credentials
    running = ws.run is not None and ws.run.running
    live = ws.live().get("run")
    progress = ""
    if live is not None:
        progress = (
            f'<div id="run-live" class="bar" data-state="{h(live["state"])}">'
            '<progress id="run-progress" max="1" value="0">'
            '</progress> <span id="run-text"></span>'
            + ('<form method="post" action="/run/stop" class="inline">'
               '<button type="submit" id="stop">Stop</button></form>' if running else "")
            + "</div>"
        )  # fmt: skip
    disabled = " disabled" if running or ws.mapping_problem else ""
    return (
        '<section id="run"><h2>5. Import</h2>'
        '<form method="post" action="/run" id="run-form">'
        '<label><input type="radio" name="target" value="sandbox" checked id="to-sandbox"> '
        "into a local sandbox (a rehearsal: nothing leaves this machine)</label><br>"
        '<label><input type="radio" name="target" value="metrix" id="to-metrix"> into Metrix: '
        f'</label> endpoint <input name="endpoint" value="{h(creds.endpoint)}" size="28"> '
        f'app id <input name="app_id" value="{h(creds.app_id)}" size="14" autocomplete="off"> '
        'API key <input type="password" name="api_key" size="18" autocomplete="off" '
        f'placeholder="{h(creds.masked)}"><br>'
        '<p class="warn">Importing users can start Metrix automation campaigns aimed at them '
        "(welcome messages, SMS, push). Check the app's active campaigns first.</p>"
        '<label><input type="checkbox" name="restart" id="restart"> start over: abandon an '
        "unfinished import of this file instead of resuming it</label><br>"
        f'<button type="submit" id="start"{disabled}>Start the import</button></form>'
        f"{progress}{_earlier(ws)}</section>"
    )


def _earlier(ws: Workspace) -> str:
    runs = ws.earlier_runs()
    if not runs:
        return ""
    items = "".join(
        f'<h4 dir="auto">{h(name)}</h4><pre dir="auto">{h(text)}</pre>' for name, text in runs
    )
    return (
        f'<details id="earlier"><summary>Imports kept in {h(ws.runs_dir)} '
        f"({len(runs)})</summary><p>Every import keeps a state file: open the same file with "
        "the same mapping and start the import again, and an unfinished one resumes where it "
        f"stopped; a finished one sends the file again.</p>{items}</details>"
    )


def _results_section(ws: Workspace) -> str:
    run = ws.run
    if run is None or run.running:
        return ""
    status = run.status
    parts = ['<section id="results"><h2>6. Results</h2>']
    if status.get("state") == "error":
        parts.append(f'<p class="error" id="run-error" dir="auto">{h(status.get("error"))}</p>')
    summary = status.get("summary")
    if summary:
        parts.append(
            f'<p id="run-summary">{summary["rows_total"]:,} rows: '
            f'<b id="sent">{summary["rows_sent"]:,}</b> sent, '
            f'<b id="failed">{summary["rows_failed"]:,}</b> failed, '
            f'<b id="skipped">{summary["rows_skipped"]:,}</b> skipped.</p>'
        )
        if status.get("advice"):
            parts.append(f'<p class="error" dir="auto">{h(status["advice"])}</p>')
        if summary.get("failures_path"):
            parts.append(
                '<p><a href="/run/failures.csv" download="failures.csv" id="download-failures">'
                "Download the failure CSV</a> (every row not sent, with its reason; fix it and "
                "import it with the same mapping).</p>"
            )
        if ws.run_target == "sandbox":
            parts.append(
                f'<p>The sandbox stored them: <code id="sandbox-url">{h(ws.sandbox_url)}'
                "_sandbox/users</code></p>"
            )
        parts.append(
            "<h3>To repeat it from cron</h3>"
            f'<pre id="command" dir="ltr">{h(ws.command_line())}</pre>'
            '<h3>Report</h3><p><a href="/run/report" target="_blank" id="report-link">'
            "Open the report</a></p>"
            '<iframe src="/run/report" title="run report" id="report"></iframe>'
        )
    parts.append("</section>")
    return "".join(parts)
