"""Assistants drive the studio over MCP (Gradio's MCP extra): the tools are listed with their
descriptions, and make -> apply -> export works across separate tool calls, which the page's
endpoints (whose workspace lives in the page session) could not do."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.request

import pytest

pytest.importorskip("gradio")
pytest.importorskip("mcp")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from PIL import Image  # noqa: E402

from tests.browser.studio_pass import free_port  # noqa: E402

pytestmark = pytest.mark.slow


async def _session_calls(url: str, calls):
    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await calls(session)


def _text(result) -> str:
    return "\n".join(part.text for part in result.content if part.type == "text")


def test_an_assistant_makes_applies_and_exports_a_concept_over_mcp(tiny_base, tmp_path, monkeypatch):
    from stand_in_inception import use_stand_in

    from app.agent_tools import MCP_TOOLS
    from app.studio import build_demo, launch_options

    use_stand_in(monkeypatch)
    demo = build_demo(tiny_base, tmp_path / "workspaces")
    options = launch_options()
    assert options["mcp_server"] is True  # the extra is part of the studio's install
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **options)
    buffer = io.BytesIO()
    Image.new("RGB", (97, 65), (200, 120, 40)).save(buffer, "PNG")  # not multiples of 8
    photo = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    async def calls(session):
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        made = await session.call_tool("make_concept", {
            "concept": "winter", "pairs_to_make": 12, "pairs_to_keep": 6, "minutes": 0.05,
            "size": 32, "teacher": "builtin"})
        unknown = await session.call_tool("make_concept", {
            "concept": "old person", "pairs_to_make": 12, "pairs_to_keep": 6, "minutes": 0.05,
            "size": 32, "teacher": "builtin"})
        return tools, made, unknown

    try:
        url = f"http://127.0.0.1:{port}/gradio_api/mcp/"
        tools, made, unknown = asyncio.run(_session_calls(url, calls))
        # The three session-free tools, described; the page's endpoints (which would each open
        # an empty workspace) are not offered.
        assert set(tools) == set(MCP_TOOLS) == {"make_concept", "apply_concept", "export_concept"}
        assert not {"preview", "run", "run_1", "stop_job"} & set(tools)
        assert "workspace id" in tools["apply_concept"].inputSchema["properties"]["workspace"]["description"]
        assert "LoRA adapter" in tools["make_concept"].description

        assert not made.isError, _text(made)
        assert not made.isError, _text(made)
        summary = json.loads(_text(made))
        workspace = summary["workspace"]
        assert summary["concept"] == "winter" and summary["pairs_made"] == 12
        assert summary["pairs_kept"] == 6 and summary["steps"] > 0
        assert [row["model"] for row in summary["held_out"]][0].startswith("E2GAN")
        assert unknown.isError and "old person" in _text(unknown)
        assert len(list((tmp_path / "workspaces").iterdir())) == 1  # the refused one left nothing

        async def use(session):
            applied = await session.call_tool("apply_concept", {
                "workspace": workspace, "image": photo,
                "strength": 1.0, "concept": ""})
            exported = await session.call_tool("export_concept", {
                "workspace": workspace, "format": "adapter", "concept": ""})
            wrong = await session.call_tool("apply_concept", {
                "workspace": "0123456789abcdef", "image": photo,
                "strength": 1.0, "concept": ""})
            return applied, exported, wrong

        applied, exported, wrong = asyncio.run(_session_calls(url, use))
        assert not applied.isError, _text(applied)
        image_part = next(part for part in applied.content if part.type == "image")
        edited = Image.open(io.BytesIO(base64.b64decode(image_part.data)))
        assert edited.size == (97, 65)  # the photo's own size
        assert not exported.isError, _text(exported)
        url = _text(exported)
        assert url.endswith("winter.safetensors")
        with urllib.request.urlopen(url) as response:  # the assistant downloads the adapter
            assert response.read() == next((tmp_path / "workspaces").glob(
                "*/concepts/winter/exports/winter.safetensors")).read_bytes()
        assert wrong.isError and "0123456789abcdef" in _text(wrong)
    finally:
        demo.close()
