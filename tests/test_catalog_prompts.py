"""Prompt templates in the store (SQLite and PostgreSQL): versions, publishing, labels, partials,
collections, and rendering through the in-memory renderer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_catalog_harness import KINDS, QueryCounter, make_state, store_engine
from wayport.catalog import CatalogState, Conflict, InvalidInput, MissingVariables, NotFound, PromptTemplate

CHAT = json.dumps(
    [
        {"role": "system", "content": "You're a helpful assistant."},
        {"role": "user", "content": "Who directed {{movie}}?"},
    ]
)
MOVIE = PromptTemplate(
    string=CHAT,
    parameters={"max_tokens": 256, "temperature": 0},
    model="gpt-4o",
    template_metadata={"template_type": "chat"},
)


def chat(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


@pytest.fixture(params=KINDS)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogState]:
    async with store_engine(request.param, tmp_path) as engine:
        catalog = make_state(engine)
        await catalog.start()
        yield catalog


async def render(state: CatalogState, reference: str, **body: Any) -> dict[str, Any]:
    data, _ = await state.renderer.render(reference, body)
    return data


async def user_text(state: CatalogState, reference: str, **variables: Any) -> str:
    data = await render(state, reference, variables=variables)
    content: str = data["messages"][-1]["content"]
    return content


# -- prompts and versions -------------------------------------------------------------------------------


async def test_a_new_prompt_has_a_pp_slug_and_a_published_first_version(state: CatalogState) -> None:
    prompt, version = await state.prompts.create("Movie bot", MOVIE, description="first")
    assert re.match(r"^pp-movie-bot-[0-9a-z]{6}$", prompt.slug)
    assert (prompt.current_version, prompt.default_version, version.version) == (1, 1, 1)
    assert version.template == MOVIE and version.description == "first"
    assert (await state.prompts.get(prompt.id)) == (await state.prompts.get(prompt.slug))


async def test_prompts_go_to_the_default_collection_unless_told(state: CatalogState) -> None:
    default = await state.collections.default()
    prompt, _ = await state.prompts.create("a", MOVIE)
    assert prompt.collection_id == default.id and default.slug == "default" and default.is_default
    folder = await state.collections.create("Support")
    other, _ = await state.prompts.create("b", MOVIE, collection_id=folder.slug)
    assert other.collection_id == folder.id
    with pytest.raises(NotFound):
        await state.prompts.create("c", MOVIE, collection_id="no-such-collection")
    listed, total = await state.prompts.list(collection_id=folder.id)
    assert total == 1 and [(p.slug, model) for p, model in listed] == [(other.slug, "gpt-4o")]


async def test_concurrent_first_uses_make_one_default_collection(state: CatalogState) -> None:
    made = await asyncio.gather(*(state.collections.default() for _ in range(6)))
    assert len({c.id for c in made}) == 1
    assert [c.slug for c in await state.collections.list()] == ["default"]


async def test_invalid_templates_are_refused(state: CatalogState) -> None:
    for bad in (
        PromptTemplate(string="{{#open}} never closed", template_metadata={"template_type": "completion"}),
        PromptTemplate(string="[not json", template_metadata={"template_type": "chat"}),
        PromptTemplate(string='[{"content": "no role"}]'),
        PromptTemplate(string="hi", template_metadata={"template_type": "poem"}),
    ):
        with pytest.raises(InvalidInput) as caught:
            await state.prompts.create("bad", bad)
        assert caught.value.errors and caught.value.errors[0].startswith("path: ")
    assert (await state.prompts.list())[1] == 0


async def test_an_update_adds_a_version_but_publishing_is_separate(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("movie", MOVIE)
    _, v2 = await state.prompts.update(prompt.slug, {"string": chat("Who starred in {{movie}}?")})
    assert v2.version == 2 and v2.template.model == "gpt-4o"  # unchanged fields carried over
    assert await user_text(state, prompt.slug, movie="Dune") == "Who directed Dune?"
    assert await user_text(state, f"{prompt.slug}@latest", movie="Dune") == "Who starred in Dune?"
    assert await user_text(state, f"{prompt.slug}@1", movie="Dune") == "Who directed Dune?"
    await state.prompts.make_default(prompt.slug, 2)
    state.renderer.invalidate()
    assert await user_text(state, prompt.slug, movie="Dune") == "Who starred in Dune?"
    with pytest.raises(NotFound):
        await state.prompts.make_default(prompt.slug, 7)


async def test_a_rename_adds_no_version(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("before", MOVIE)
    renamed, version = await state.prompts.update(prompt.id, {}, name="after")
    assert (renamed.name, renamed.current_version, version.version) == ("after", 1, 1)


async def test_concurrent_updates_get_distinct_versions(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("busy", MOVIE)
    results = await asyncio.gather(
        *(state.prompts.update(prompt.id, {"string": chat(f"variant {i}")}) for i in range(8))
    )
    assert sorted(version.version for _, version in results) == list(range(2, 10))
    _, versions = await state.prompts.versions(prompt.id)
    assert [v.version for v in versions] == list(range(9, 0, -1))
    assert len({v.template.string for v in versions}) == 9


async def test_an_archived_prompt_no_longer_renders(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("gone", MOVIE)
    await state.prompts.delete(prompt.slug)
    with pytest.raises(NotFound):
        await render(state, prompt.slug, variables={"movie": "x"})
    assert (await state.prompts.list())[1] == 0


# -- labels -------------------------------------------------------------------------------------------


async def test_labels_publish_and_roll_back(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("labelled", PromptTemplate(string=chat("v1 {{x}}")))
    await state.prompts.update(prompt.id, {"string": chat("v2 {{x}}")})
    await state.prompts.set_label(prompt.id, "production", 1)
    await state.prompts.set_label(prompt.id, "staging", 2)
    assert await user_text(state, f"{prompt.slug}@production", x="!") == "v1 !"
    assert await user_text(state, f"{prompt.slug}@staging", x="!") == "v2 !"

    await state.prompts.set_label(prompt.id, "production", 2)  # publish to production
    state.renderer.invalidate()
    assert await user_text(state, f"{prompt.slug}@production", x="!") == "v2 !"
    await state.prompts.set_label(prompt.id, "PRODUCTION", 1)  # roll back
    state.renderer.invalidate()
    assert await user_text(state, f"{prompt.slug}@production", x="!") == "v1 !"
    assert (await state.prompts.require(prompt.id)).labels == {"production": 1, "staging": 2}


async def test_a_removed_or_unknown_label_does_not_resolve(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("labelled", PromptTemplate(string=chat("hi")))
    await state.prompts.set_label(prompt.id, "canary", 1)
    await state.prompts.remove_label(prompt.id, "canary")
    state.renderer.invalidate()
    for reference in (f"{prompt.slug}@canary", f"{prompt.slug}@nope", f"{prompt.slug}@9"):
        with pytest.raises(NotFound):
            await render(state, reference)
    with pytest.raises(NotFound):
        await state.prompts.remove_label(prompt.id, "canary")


async def test_label_names_are_checked(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("labelled", PromptTemplate(string=chat("hi")))
    for bad in ("latest", "12", "two words", "", "x" * 65):
        with pytest.raises(InvalidInput):
            await state.prompts.set_label(prompt.id, bad, 1)
    with pytest.raises(NotFound):
        await state.prompts.set_label(prompt.id, "production", 2)


# -- rendering ------------------------------------------------------------------------------------------


async def test_render_gives_an_openai_body_with_the_templates_parameters(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("movie", MOVIE)
    data = await render(state, prompt.slug, variables={"movie": "Dune 2"})
    assert data == {
        "model": "gpt-4o",
        "max_tokens": 256,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You're a helpful assistant."},
            {"role": "user", "content": "Who directed Dune 2?"},
        ],
    }


async def test_request_hyperparameters_override_the_templates(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("movie", MOVIE)
    data = await render(
        state, prompt.slug, variables={"movie": "Dune"}, temperature=0.9, model="o3", stream=True
    )
    assert (data["temperature"], data["model"], data["max_tokens"]) == (0.9, "o3", 256)
    assert "stream" not in data and "variables" not in data


async def test_missing_variables_are_listed_or_rendered_empty(state: CatalogState) -> None:
    template = PromptTemplate(string=chat("{{greeting}} {{name}}"), parameters={}, model="m")
    prompt, _ = await state.prompts.create("strict", template)
    with pytest.raises(MissingVariables) as caught:
        await render(state, prompt.slug, variables={})
    assert caught.value.names == ["greeting", "name"]
    state.renderer.missing = "empty"
    assert await user_text(state, prompt.slug, name="Ann") == " Ann"


async def test_variables_never_break_the_messages_json(state: CatalogState) -> None:
    prompt, _ = await state.prompts.create("json", PromptTemplate(string=chat("say {{text}}")))
    text = 'quote " brace } newline \n backslash \\'
    assert await user_text(state, prompt.slug, text=text) == f"say {text}"


async def test_content_parts_and_names_are_rendered_too(state: CatalogState) -> None:
    string = json.dumps(
        [
            {
                "role": "user",
                "name": "{{user}}",
                "content": [
                    {"type": "text", "text": "Describe {{thing}}"},
                    {"type": "image_url", "image_url": {"url": "{{url}}"}},
                ],
            }
        ]
    )
    prompt, _ = await state.prompts.create("parts", PromptTemplate(string=string))
    data = await render(
        state, prompt.slug, variables={"user": "ann", "thing": "this", "url": "https://x/y.png"}
    )
    message = data["messages"][0]
    assert message["name"] == "ann"
    assert message["content"] == [
        {"type": "text", "text": "Describe this"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]


async def test_a_raw_template_is_rendered_before_it_is_parsed(state: CatalogState) -> None:
    string = (
        '[{{#system}}{"role": "system", "content": "{{system}}"},{{/system}}'
        '{"role": "user", "content": [{"type": "text", "text": "{{question}}"}'
        '{{#image}}, {"type": "image_url", "image_url": {"url": "{{image}}"}}{{/image}}]}]'
    )
    template = PromptTemplate(
        string=string, is_raw_template=True, template_metadata={"template_type": "chat"}
    )
    prompt, _ = await state.prompts.create("raw", template)
    plain = await render(state, prompt.slug, variables={"question": 'a "quoted"\nquestion'})
    assert plain["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": 'a "quoted"\nquestion'}]}
    ]
    full = await render(
        state, prompt.slug, variables={"question": "q", "system": "be brief", "image": "https://i"}
    )
    assert [m["role"] for m in full["messages"]] == ["system", "user"]
    assert full["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "https://i"}}


async def test_a_raw_template_that_renders_broken_json_is_an_error(state: CatalogState) -> None:
    template = PromptTemplate(string='[{"role": "user", "content": {{{raw}}}}]', is_raw_template=True)
    prompt, _ = await state.prompts.create("raw", template)
    with pytest.raises(InvalidInput):
        await render(state, prompt.slug, variables={"raw": "not json"})
    assert (await render(state, prompt.slug, variables={"raw": '"fine"'}))["messages"][0]["content"] == "fine"


async def test_a_completion_template_renders_a_prompt(state: CatalogState) -> None:
    template = PromptTemplate(
        string="Translate to French: {{text}}", parameters={"max_tokens": 20}, model="davinci"
    )
    prompt, _ = await state.prompts.create("text", template)
    data, endpoint, _ = await state.render_for_completion(prompt.slug, {"variables": {"text": "hello"}})
    assert endpoint == "complete"
    assert data == {"model": "davinci", "max_tokens": 20, "prompt": "Translate to French: hello"}


async def test_render_for_completion_keeps_stream_and_names_the_version_for_the_log(
    state: CatalogState,
) -> None:
    template = PromptTemplate(
        string=chat("{{q}}"), model="gpt-4o", virtual_key="openai-prod", tools=[{"type": "function"}]
    )
    prompt, version = await state.prompts.create("run", template)
    body, endpoint, log = await state.render_for_completion(
        f"{prompt.slug}@1", {"variables": {"q": "hi"}, "stream": True, "max_tokens": 5}
    )
    assert endpoint == "chat"
    assert body == {
        "model": "gpt-4o",
        "tools": [{"type": "function"}],
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 5,
    }
    assert log == {
        "prompt_id": prompt.id,
        "prompt_slug": prompt.slug,
        "prompt_version": 1,
        "prompt_version_id": version.id,
        "virtual_key": "openai-prod",
        "provider": None,
        "workspace_id": None,
    }


async def test_a_burst_of_renders_reads_the_store_once(state: CatalogState) -> None:
    partial, _ = await state.partials.create("tone", "Be {{tone}}.")
    prompt, _ = await state.prompts.create("hot", PromptTemplate(string=chat("{{>tone}} {{q}}")))
    await render(state, f"{prompt.slug}@latest", variables={"tone": "brief", "q": "?"})
    counter = QueryCounter(state.configs._engine)
    try:
        for i in range(200):
            data = await render(state, f"{prompt.slug}@latest", variables={"tone": "brief", "q": str(i)})
    finally:
        counter.close()
    assert counter.count == 0
    assert data["messages"][0]["content"] == "Be brief. 199"


# -- partials ---------------------------------------------------------------------------------------------


async def test_partials_are_included_by_name_slug_or_id_and_nest(state: CatalogState) -> None:
    inner, _ = await state.partials.create("signature", "-- {{team}}")
    outer, _ = await state.partials.create("rules", "Be {{tone}}. {{>signature}}")
    for key in ("rules", outer.slug, outer.id):
        prompt, _ = await state.prompts.create(
            f"uses {key}", PromptTemplate(string=chat(f"{{{{>{key}}}}} Q"))
        )
        assert await user_text(state, prompt.slug, tone="kind", team="Ops") == "Be kind. -- Ops Q"
    assert inner.slug.startswith("pl-signature-")


async def test_a_partial_version_is_used_once_published(state: CatalogState) -> None:
    partial, _ = await state.partials.create("tone", "v1")
    prompt, _ = await state.prompts.create(
        "p", PromptTemplate(string=chat("{{>tone}}|{{>tone@latest}}|{{>tone@1}}"))
    )
    _, v2 = await state.partials.update("tone", string="v2")
    state.renderer.invalidate()
    assert v2.version == 2
    assert await user_text(state, prompt.slug) == "v1|v2|v1"
    await state.partials.make_default("tone", 2)
    state.renderer.invalidate()
    assert await user_text(state, prompt.slug) == "v2|v2|v1"


async def test_a_missing_or_archived_partial_is_an_error(state: CatalogState) -> None:
    await state.partials.create("tone", "kind")
    prompt, _ = await state.prompts.create(
        "p", PromptTemplate(string=chat("{{>tone}} {{>ghost}} {{>tone@9}}"))
    )
    with pytest.raises(MissingVariables) as caught:
        await render(state, prompt.slug)
    assert caught.value.names == ["ghost", "tone@9"]
    await state.partials.delete("tone")
    state.renderer.invalidate()
    with pytest.raises(MissingVariables) as caught:
        await render(state, prompt.slug)
    assert caught.value.names == ["ghost", "tone", "tone@9"]


async def test_partial_names_are_unique_among_active_partials(state: CatalogState) -> None:
    first, _ = await state.partials.create("tone", "a")
    with pytest.raises(Conflict):
        await state.partials.create("tone", "b")
    await state.partials.delete(first.id)
    again, _ = await state.partials.create("tone", "c")
    assert (await state.partials.get("tone")) == again
    with pytest.raises(InvalidInput):
        await state.partials.create("broken", "{{#x}}")
