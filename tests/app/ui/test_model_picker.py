"""The chat's model picker labels: name, version and status from GET /v1/models entries."""
from app.ui.model_picker import picker_labels


def test_public_name_shows_its_production_version_and_each_version_its_status():
    cards = [{"id": "flywheel-demo", "version": "mv-base", "status": "production", "canary": "mv-0002"},
             {"id": "mv-base", "version": "mv-base", "status": "production"},
             {"id": "mv-0002", "version": "mv-0002", "status": "canary"},
             {"id": "mv-0001", "version": "mv-0001", "status": None}]
    assert picker_labels(cards) == {
        "flywheel-demo": "flywheel-demo · mv-base · production (canary mv-0002 on a share)",
        "mv-base": "mv-base · production", "mv-0002": "mv-0002 · canary", "mv-0001": "mv-0001"}


def test_a_server_without_a_registry_lists_plain_names():
    assert picker_labels([{"id": "stories260K-hf", "version": "stories260K-hf", "status": None}]) == {
        "stories260K-hf": "stories260K-hf"}
