"""``/v1/prompts``, ``/v1/prompts/partials`` and ``/v1/collections`` over HTTP, driven by the
portkey-ai SDK as Portkey's guides use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from portkey_ai import Portkey

from tests.test_catalog_harness import CatalogServer, assert_failure, running_server

MESSAGES = json.dumps(
    [
        {"role": "system", "content": "You're a helpful assistant."},
        {"role": "user", "content": "Who directed {{movie}}?"},
    ]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CatalogServer]:
    with running_server("sqlite", tmp_path_factory.mktemp("catalog-prompts")) as running:
        yield running


@pytest.fixture()
def portkey(server: CatalogServer) -> Portkey:
    return Portkey(api_key="k", base_url=server.v1)


def default_collection(portkey: Portkey) -> str:
    collections = portkey.collections.list()
    default = [c for c in collections.data if c["is_default"]][0]
    return str(default["id"])


def create_movie_prompt(portkey: Portkey, name: str = "Movie bot") -> Any:
    return portkey.prompts.create(
        name=name,
        collection_id=default_collection(portkey),
        string=MESSAGES,
        parameters={"max_tokens": 256, "temperature": 0},
        model="gpt-4o",
        version_description="first",
        template_metadata={"template_type": "chat"},
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the guide's .dict()
def test_the_llamaindex_guide_renders_a_saved_prompt(portkey: Portkey, server: CatalogServer) -> None:
    created = create_movie_prompt(portkey)
    assert created.object == "prompt" and created.slug.startswith("pp-movie-bot-") and created.version_id
    # Portkey's LlamaIndex guide, unchanged but for the host
    client = Portkey(api_key="k", base_url=server.url + "/v1")
    t = client.prompts.render(prompt_id=created.slug, variables={"movie": "Dune 2"}).data.dict()
    messages = [ChatMessage(content=m["content"], role=m["role"]) for m in t["messages"]]
    assert [(m.role.value, m.content) for m in messages] == [
        ("system", "You're a helpful assistant."),
        ("user", "Who directed Dune 2?"),
    ]
    assert (t["model"], t["max_tokens"], t["temperature"]) == ("gpt-4o", 256, 0)


def test_render_takes_hyperparameter_overrides_at_the_root(portkey: Portkey) -> None:
    created = create_movie_prompt(portkey)
    rendered = portkey.prompts.render(
        prompt_id=created.id, variables={"movie": "Alien"}, temperature=0.7, max_tokens=5, top_p=0.5
    )
    assert rendered.success is True
    data = rendered.data
    assert (data.temperature, data.max_tokens, data.top_p, data.model) == (0.7, 5, 0.5, "gpt-4o")


def test_the_sdk_lists_retrieves_updates_publishes_and_deletes(portkey: Portkey) -> None:
    created = create_movie_prompt(portkey, "Lifecycle")
    listed = portkey.prompts.list(search="Lifecycle")
    assert (
        listed.total == 1 and listed.data[0]["slug"] == created.slug and listed.data[0]["model"] == "gpt-4o"
    )

    got = portkey.prompts.retrieve(created.slug)
    assert (got.id, got.string, got.prompt_version, got.prompt_version_id) == (
        created.id,
        MESSAGES,
        1,
        created.version_id,
    )
    assert got.parameters == {"max_tokens": 256, "temperature": 0}

    new_string = json.dumps([{"role": "user", "content": "Who starred in {{movie}}?"}])
    updated = portkey.prompts.update(created.slug, string=new_string, version_description="cast")
    assert updated.prompt_version == 2 and updated.version_id != created.version_id
    # not published yet: the bare id still renders version 1
    rendered = portkey.prompts.render(prompt_id=created.slug, variables={"movie": "Up"})
    assert rendered.data.messages[-1].content == "Who directed Up?"
    portkey.prompts.publish(created.slug, version=2)
    rendered = portkey.prompts.render(prompt_id=created.slug, variables={"movie": "Up"})
    assert rendered.data.messages[-1].content == "Who starred in Up?"

    versions = portkey.prompts.versions.list(created.slug)
    assert [(v["prompt_version"], v["prompt_description"], v["is_default"]) for v in versions.data] == [
        (2, "cast", True),
        (1, "first", False),
    ]
    one = portkey.prompts.versions.retrieve(created.slug, versions.data[1]["id"])
    assert (one.prompt_version, one.string) == (1, MESSAGES)

    portkey.prompts.delete(created.slug)
    assert portkey.prompts.list(search="Lifecycle").total == 0


def test_a_render_by_label_follows_the_label_when_it_moves(portkey: Portkey, server: CatalogServer) -> None:
    created = create_movie_prompt(portkey, "Labelled")
    portkey.prompts.update(created.slug, string=json.dumps([{"role": "user", "content": "v2 {{movie}}"}]))
    versions = portkey.prompts.versions.list(created.slug).data
    v1, v2 = versions[1]["id"], versions[0]["id"]
    portkey.prompts.versions.update(created.slug, v1, label_id="production")

    def production() -> str:
        data = portkey.prompts.render(
            prompt_id=f"{created.slug}@production", variables={"movie": "Jaws"}
        ).data
        return str(data.messages[-1].content)

    assert production() == "Who directed Jaws?"
    portkey.prompts.versions.update(created.slug, v2, label_id="production")  # publish
    assert production() == "v2 Jaws"
    response = server.http.put(
        f"/v1/prompts/{created.slug}/labels/production", json={"version": 1}
    )  # roll back
    assert response.json()["labels"] == {"production": 1}
    assert production() == "Who directed Jaws?"
    assert server.http.get(f"/v1/prompts/{created.slug}/labels").json()["data"] == [
        {"label": "production", "version": 1}
    ]
    server.http.delete(f"/v1/prompts/{created.slug}/labels/production")
    assert_failure(
        server.http.post(f"/v1/prompts/{created.slug}@production/render", json={"variables": {}}), 404
    )


def test_references_select_versions_on_every_route(portkey: Portkey, server: CatalogServer) -> None:
    created = create_movie_prompt(portkey, "Refs")
    portkey.prompts.update(created.slug, model="o3")
    assert server.http.get(f"/v1/prompts/{created.slug}").json()["model"] == "gpt-4o"
    assert server.http.get(f"/v1/prompts/{created.slug}@latest").json()["model"] == "o3"
    assert server.http.get(f"/v1/prompts/{created.id}@1").json()["model"] == "gpt-4o"
    body = {"variables": {"movie": "Heat"}}
    assert (
        server.http.post(f"/v1/prompts/{created.slug}@latest/render", json=body).json()["data"]["model"]
        == "o3"
    )


def test_missing_variables_are_a_400_listing_them(portkey: Portkey, server: CatalogServer) -> None:
    created = create_movie_prompt(portkey, "Strict")
    body = assert_failure(server.http.post(f"/v1/prompts/{created.slug}/render", json={"variables": {}}), 400)
    assert body["errors"] == ["movie"] and "movie" in body["message"]


def test_unknown_prompts_versions_and_bad_bodies_answer_the_envelope(server: CatalogServer) -> None:
    assert_failure(server.http.get("/v1/prompts/pp-nothing-000000"), 404)
    assert_failure(server.http.post("/v1/prompts/pp-nothing-000000/render", json={"variables": {}}), 404)
    assert_failure(server.http.put("/v1/prompts/pp-nothing-000000", json={"name": "x"}), 404)
    assert_failure(server.http.delete("/v1/prompts/pp-nothing-000000"), 404)
    assert_failure(server.http.post("/v1/prompts", json={"name": "no string"}), 400)
    body = assert_failure(server.http.post("/v1/prompts", json={"name": "x", "string": "{{#a}}"}), 400)
    assert body["errors"][0].startswith("path: string")
    assert_failure(
        server.http.post("/v1/prompts", json={"name": "x", "string": "y", "collection_id": "nope"}), 404
    )
    prompt = server.http.post("/v1/prompts", json={"name": "ok", "string": "Hi {{n}}"}).json()
    assert_failure(server.http.put(f"/v1/prompts/{prompt['id']}/makeDefault", json={"version": 5}), 404)
    assert_failure(server.http.put(f"/v1/prompts/{prompt['id']}/makeDefault", json={}), 400)
    assert_failure(server.http.put(f"/v1/prompts/{prompt['id']}/labels/latest", json={"version": 1}), 400)
    assert_failure(server.http.post(f"/v1/prompts/{prompt['id']}/render", json={"variables": [1]}), 400)
    text = server.http.post(f"/v1/prompts/{prompt['id']}/render", json={"variables": {"n": 1}}).json()
    assert text["data"]["prompt"] == "Hi 1"


def test_partials_through_the_sdk(portkey: Portkey, server: CatalogServer) -> None:
    made = portkey.prompts.partials.create(name="house-style", string="Answer in {{language}}.")
    assert made.slug.startswith("pl-house-style-") and made.version_id
    prompt = portkey.prompts.create(
        name="Styled",
        collection_id=default_collection(portkey),
        string=json.dumps(
            [{"role": "system", "content": "{{>house-style}}"}, {"role": "user", "content": "{{q}}"}]
        ),
        parameters={},
        model="gpt-4o",
    )

    def system() -> str:
        data = portkey.prompts.render(prompt_id=prompt.slug, variables={"language": "French", "q": "?"}).data
        return str(data.messages[0].content)

    assert system() == "Answer in French."
    assert "house-style" in [p["name"] for p in portkey.prompts.partials.list().data]
    updated = portkey.prompts.partials.update(made.slug, string="Always answer in {{language}}.")
    assert updated.version == 2
    assert system() == "Answer in French."  # a new version is used once published
    portkey.prompts.partials.publish(made.slug, version=2)
    assert system() == "Always answer in French."
    assert portkey.prompts.partials.retrieve(made.slug).version == 2
    assert portkey.prompts.partials.retrieve(f"{made.slug}@1").string == "Answer in {{language}}."
    versions = portkey.prompts.partials.versions.list(made.slug)
    assert [v["version"] for v in versions.data] == [2, 1]
    portkey.prompts.partials.delete(made.slug)
    body = assert_failure(server.http.post(f"/v1/prompts/{prompt.slug}/render", json={"variables": {}}), 400)
    assert body["errors"] == ["house-style"]


def test_collections_through_the_sdk(portkey: Portkey) -> None:
    made = portkey.collections.create(name="Support")
    assert made.object == "collection"
    slugs = [c["slug"] for c in portkey.collections.list().data]
    assert slugs[0] == "default" and made.slug in slugs
    assert portkey.collections.retrieve(made.id).name == "Support"
    prompt = portkey.prompts.create(name="in folder", collection_id=made.slug, string="Hi", parameters={})
    assert portkey.prompts.list(collection_id=made.id).data[0]["id"] == prompt.id


def test_the_change_hook_hears_prompt_writes(tmp_path: Any) -> None:
    heard: list[str] = []

    async def hook(key: str) -> None:
        heard.append(key)

    with running_server("sqlite", tmp_path, on_prompt_change=hook) as server:
        prompt = server.http.post("/v1/prompts", json={"name": "p", "string": "Hi"}).json()
        server.http.put(f"/v1/prompts/{prompt['id']}", json={"string": "Hello"})
        server.http.put(f"/v1/prompts/{prompt['id']}/makeDefault", json={"version": 2})
        partial = server.http.post("/v1/prompts/partials", json={"name": "x", "string": "y"}).json()
    assert heard == [prompt["id"]] * 3 + [partial["id"]]
