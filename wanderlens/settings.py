"""`.env.example`: every process's settings in one commented file (``wanderlens settings`` prints it).

The settings themselves live with the process that reads them: ``bot.settings``, ``worker.settings``, and the
shared ``contract.settings``.
"""

from __future__ import annotations

from pydantic import AliasChoices

from bot.settings import BotSettings
from contract.settings import LogSettings
from worker.settings import WorkerSettings


def env_example() -> str:
    """The text of `.env.example`: every setting, commented out at its default, with what it does."""
    lines = [
        "# Wanderlens configuration: copy to .env, then uncomment and edit what you need.",
        "# Real environment variables win over this file. Regenerate it with `wanderlens settings`.",
        "",
    ]
    seen: set[str] = set()
    for settings_class in (BotSettings, WorkerSettings, LogSettings):
        lines.append(f"# --- {settings_class.__doc__}")
        for name, info in settings_class.model_fields.items():
            alias = info.validation_alias
            env_name = alias.choices[0] if isinstance(alias, AliasChoices) else f"WANDERLENS_{name.upper()}"
            if env_name in seen:
                continue
            seen.add(env_name)
            if info.default_factory is not None:
                shown = "(this machine's host name)" if name in ("consumer", "bot_instance") else ""
            else:
                shown = "" if info.default is None else str(info.default)
            if name == "weights_cache":
                shown = "~/.cache/wanderlens/weights"
            lines.append(f"# {info.description}")
            lines.append(f"# {env_name}={shown}")
        lines.append("")
    return "\n".join(lines)
