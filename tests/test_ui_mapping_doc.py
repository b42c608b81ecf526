"""The page's mapping editor: column choices to YAML the CLI loads, and back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from importer.core.config import parse_mapping
from importer.core.convert import WHITESPACE
from importer.core.infer import draft_mapping
from importer.edges.readers import open_source
from importer.engine.pipeline import sample_rows
from importer.ui.mapping_doc import edit, from_yaml, to_yaml
from importer.ui.workspace import _conflicts
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING

HEADER = ["id", "name", "mobile", "joined"]


def sample_draft() -> tuple[str, list[str], dict[str, str]]:
    source = open_source(SAMPLE_CSV)
    draft = draft_mapping(source.header, sample_rows(source, 2000), source_name="customers.csv")
    checks = {n.split(": ", 1)[0]: n.split(": ", 1)[1] for n in draft.notes}
    return draft.yaml, source.header, checks


def test_a_draft_survives_the_editor_unchanged_in_meaning() -> None:
    text, header, checks = sample_draft()
    doc = from_yaml(text, header, "title", checks)
    written = to_yaml(doc, 1)
    assert parse_mapping(written).column_specs() == parse_mapping(text).column_specs()
    email = doc.choice("email")
    assert email is not None and email.check.startswith("1 of 300 sampled cells")
    assert email.comment.startswith('header "email" matches email')
    assert f"# CHECK: {email.check}; {email.comment}" in written


def test_the_projects_mapping_survives_the_editor() -> None:
    text = SAMPLE_MAPPING.read_text(encoding="utf-8")
    header = open_source(SAMPLE_CSV).header
    before = parse_mapping(text)
    after = parse_mapping(to_yaml(from_yaml(text, header), 1))
    assert after.column_specs() == before.column_specs()
    assert after.fields == before.fields and after.custom == before.custom
    assert after.hashed == before.hashed and after.time == before.time
    assert after.source.timezone == "Asia/Tehran"


def test_edits_change_targets_types_and_formats() -> None:
    doc = from_yaml("user_id: id\n", HEADER)
    doc = edit(doc, "name", target="field:firstName")
    doc = edit(doc, "mobile", target="field:phoneNumber")
    doc = edit(doc, "mobile", format="e164", region="IR, US")
    doc = edit(doc, "joined", target="custom")
    doc = edit(doc, "joined", type="date", format="jalali:%Y/%m/%d")
    mapping = parse_mapping(to_yaml(doc, 2, {"delimiter": ";", "encoding": "auto"}))
    assert mapping.fields["firstName"].column == "name"
    assert mapping.fields["phoneNumber"].phone_format == "e164"
    assert mapping.fields["phoneNumber"].region == ("IR", "US")
    again = from_yaml(to_yaml(doc, 1), HEADER).choice("mobile")
    assert again is not None and again.region == "IR, US"
    assert mapping.custom["joined"].kind == "date"
    assert mapping.custom["joined"].formats == ("jalali:%Y/%m/%d",)
    assert (mapping.source.header_row, mapping.source.delimiter) == (2, ";")
    assert mapping.source.encoding == "auto"
    ignored = parse_mapping(to_yaml(edit(doc, "joined", target="ignore"), 1))
    assert "joined" not in ignored.custom


def test_conflicts_are_named_before_any_yaml_is_loaded() -> None:
    doc = from_yaml("user_id: id\nfields: {email: name}\n", HEADER)
    assert _conflicts(doc) == ""
    clash = edit(doc, "mobile", target="field:email")
    assert "columns 'name' and 'mobile' both map to fields.email" in _conflicts(clash)
    no_id = edit(doc, "id", target="ignore")
    assert "identifies customers" in _conflicts(no_id)


# Header names as the readers make them (``readers.make_header``): trimmed, never blank.
names = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
    .map(lambda text: text.strip(WHITESPACE))
    .filter(bool)
)


@given(st.lists(names, min_size=1, max_size=5, unique=True), st.data())
def test_any_header_and_choice_gives_yaml_the_cli_loads(
    header: list[str], data: st.DataObject
) -> None:
    doc = from_yaml("", header)
    doc = edit(doc, header[0], target="user_id")
    for name in header[1:]:
        target = data.draw(
            st.sampled_from(["ignore", "custom", "field:city", "hashed:hashedEmail"])
        )
        doc = edit(doc, name, target=target)
    if _conflicts(doc):
        return
    mapping = parse_mapping(to_yaml(doc, 1))
    assert mapping.user_id.column == header[0]
    chosen = {c.column for c in doc.columns if c.target != "ignore"}
    assert {column for _, column in mapping.column_specs()} == chosen
