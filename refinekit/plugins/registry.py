"""Plugin loading and the typed, name-based registries built from the hooks.

Built-in components load through the same hooks as third-party plugins. Each
entry point in the group ``refinekit`` is loaded on its own, so one broken
plugin becomes a warning naming its distribution instead of breaking every
command (``REFINEKIT_STRICT_PLUGINS=1`` makes it fatal).

``REFINEKIT_LOAD_PLUGINS=a,b`` loads only the entry-point plugins named ``a`` and
``b``; an empty value loads none. As in llm, it never removes the built-ins:
they are part of refinekit, and every recipe's defaults name them.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import inspect
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pluggy

from refinekit.errors import ConfigError, PluginError, RefinekitError, UnknownNameError
from refinekit.plugins import hookspecs
from refinekit.plugins.lazy_reference import check_reference, resolve

# The built-in plugins, by name: their hooks are in refinekit.components.builtin_hooks.
DEFAULT_PLUGINS: tuple[str, ...] = ("refiners", "discriminators", "regularizers", "datasets", "recipes")

KINDS: tuple[str, ...] = ("refiner", "discriminator", "regularizer", "dataset", "recipe", "task")


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid; other plugins still work."""


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, factory and who registered it.

    ``target`` is the factory, or a ``"module:attribute"`` reference to it that
    :attr:`factory` imports on first use (see :mod:`refinekit.plugins.lazy_reference`).
    """

    kind: str
    name: str
    target: Any
    description: str
    plugin: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def factory(self) -> Any:
        return resolve(self.target, f"{self.kind} '{self.name}' of plugin '{self.plugin}'")

    @property
    def detect(self) -> Callable[[str], bool] | None:
        """A dataset's path detector, if it registered one."""
        return resolve(self.extra.get("detect"), f"the detector of {self.kind} '{self.name}' of plugin '{self.plugin}'")


@dataclass
class PluginInfo:
    """What ``refinekit plugins`` shows for one plugin."""

    name: str
    version: str
    distribution: str
    hooks: list[str]
    components: dict[str, list[str]] = field(default_factory=dict)


class Registry:
    """All plugins and the components they registered, by kind and name."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("refinekit")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.problems: list[str] = []
        self._entries: dict[str, dict[str, Entry]] | None = None
        self._qualified: dict[str, dict[str, Entry]] = {}
        self._reported_unknown_hooks: set[tuple[str, str]] = set()
        from refinekit.components.builtin_hooks import BUILTIN_PLUGINS

        for name in DEFAULT_PLUGINS:
            self._add(BUILTIN_PLUGINS[name], name, "refinekit", _version("refinekit"))
        if load_entry_points:
            self._load_entry_points(_allowed_plugins())
        self._check_unknown_hooks()

    # -- loading -----------------------------------------------------------
    def _load_entry_points(self, allowed: set[str] | None) -> None:
        for ep in importlib.metadata.entry_points(group="refinekit"):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            try:
                module = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin must not break the others, even with sys.exit()
                self._problem(f"plugin '{ep.name}' from {dist} {version} failed to import: {_describe(exc)}")
                continue
            self._add(module, ep.name, dist, version)

    def _add(self, module: Any, name: str, distribution: str, version: str) -> None:
        if self.pm.is_registered(module):
            return
        if name in self.infos:
            first = self.infos[name]
            self._problem(
                f"plugin name '{name}' from {distribution} {version} is already taken by {first.distribution} "
                f"{first.version}; keeping the one from {first.distribution}. Uninstall one of them."
            )
            return
        try:
            self.pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.is_registered(module):  # pluggy keeps the hooks it added before the bad one
                self.pm.unregister(module)
            self._problem(f"plugin '{name}' from {distribution} {version} is invalid: {exc}")
            return
        hooks = sorted(h.name for h in (self.pm.get_hookcallers(module) or []))
        self.infos[name] = PluginInfo(name=name, version=version, distribution=distribution, hooks=hooks)
        self._entries = None

    def register_plugin(self, module: Any, name: str) -> None:
        """Register a plugin object directly (tests, notebooks). Undo with :meth:`unregister_plugin`."""
        self._add(module, name, "in-process", "-")
        self._check_unknown_hooks()

    def unregister_plugin(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._reported_unknown_hooks = {seen for seen in self._reported_unknown_hooks if seen[0] != name}
        self._entries = None

    def _check_unknown_hooks(self) -> None:
        """Report each hook implementation without a hookspec (a misspelt hook is otherwise never called).

        This is ``pm.check_pending()``, except that it names the plugin as registered,
        reports every offender (pluggy stops at the first) and reports each only once.
        """
        known = [name for name in vars(self.pm.hook) if not name.startswith("_")]
        for hook_name in known:
            caller = getattr(self.pm.hook, hook_name)
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                plugin = impl.plugin_name
                if impl.optionalhook or (plugin, hook_name) in self._reported_unknown_hooks:
                    continue
                self._reported_unknown_hooks.add((plugin, hook_name))
                specs = [n for n in known if getattr(self.pm.hook, n).has_spec()]
                close = difflib.get_close_matches(hook_name, specs, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                info = self.infos.get(plugin)
                where = f" from {info.distribution} {info.version}" if info else ""
                self._problem(
                    f"plugin '{plugin}'{where} implements hook '{hook_name}', which does not exist, "
                    f"so it is never called{hint}"
                )

    def _problem(self, message: str) -> None:
        if os.environ.get("REFINEKIT_STRICT_PLUGINS", "") not in ("", "0"):
            raise PluginError(message + " (REFINEKIT_STRICT_PLUGINS is set, so this is fatal)")
        self.problems.append(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    # -- registries --------------------------------------------------------
    @property
    def entries(self) -> dict[str, dict[str, Entry]]:
        if self._entries is None:
            self._entries = self._collect()
        return self._entries

    def _collect(self) -> dict[str, dict[str, Entry]]:
        entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        qualified: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        for info in self.infos.values():
            info.components = {}
        for kind in KINDS:
            hook_name = f"register_{kind}s" if kind != "recipe" else "register_recipes"
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                plugin = self.pm.get_name(impl.plugin) or "?"
                staged: list[Entry] = []
                try:
                    impl.function(register=self._make_register(kind, plugin, staged))
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:
                    # Nothing of a hook that failed half-way is kept: a half-registered plugin misleads.
                    dropped = f"; none of its {len(staged)} {kind}(s) registered before that are kept" if staged else ""
                    self._problem(
                        f"plugin '{plugin}' from {self._origin(plugin)} raised in {hook_name}: {_describe(exc)}{dropped}"
                    )
                    continue
                for entry in staged:
                    self._admit(entry, entries[kind], qualified[kind])
        self._qualified = qualified
        return entries

    def _origin(self, plugin: str) -> str:
        """'DIST VERSION' of a loaded plugin: users uninstall distributions, not plugin names."""
        info = self.infos.get(plugin)
        return f"{info.distribution} {info.version}" if info else "an unknown distribution"

    def _make_register(self, kind: str, plugin: str, staged: list[Entry]) -> Callable[..., None]:
        def register(name: Any, factory: Any = None, description: str = "", **extra: Any) -> None:
            if kind == "recipe":  # recipes register themselves: register(Recipe(...))
                recipe = name
                name, factory, description = recipe.name, recipe, recipe.description
            if not isinstance(name, str) or not name or ":" in name:
                raise PluginError(f"{kind} name {name!r} must be a non-empty string without ':'")
            check_reference(factory, f"{kind} '{name}' of plugin '{plugin}'")
            check_reference(extra.get("detect"), f"the detector of {kind} '{name}' of plugin '{plugin}'")
            staged.append(Entry(kind, name, factory, description, plugin, dict(extra)))

        return register

    def _owns(self, plugin: str, name: str) -> bool:
        """Whether ``name`` belongs to ``plugin``: refinekit's own names, and names a plugin's or its
        distribution's name begins (``eyes-simgan`` belongs to plugin ``eyes`` of ``refinekit-eyes``)."""
        info = self.infos.get(plugin)
        if info is not None and info.distribution == "refinekit":
            return True
        stems = {plugin}
        if info is not None:
            stems.add(info.distribution.removeprefix("refinekit-").removeprefix("refinekit_"))
        return any(name == stem or name.startswith(f"{stem}-") for stem in stems if stem)

    def _admit(self, entry: Entry, table: dict[str, Entry], qualified: dict[str, Entry]) -> None:
        """Add ``entry``; on a name clash the owner of the name wins, else the first; never silently."""
        kind, name, plugin = entry.kind, entry.name, entry.plugin
        qualified[f"{plugin}:{name}"] = entry
        info = self.infos.get(plugin)
        if info is not None:
            info.components.setdefault(kind, []).append(name)
        if name not in table:
            table[name] = entry
            return
        previous = table[name].plugin
        takes_over = self._owns(plugin, name) and not self._owns(previous, name)
        kept, other = (plugin, previous) if takes_over else (previous, plugin)
        if takes_over:
            table[name] = entry
        why = f" ('{name}' belongs to '{kept}')" if self._owns(kept, name) else " (it was registered first)"
        self._problem(
            f"plugin '{plugin}' registers {kind} '{name}', already registered by '{previous}'; keeping the one from "
            f"'{kept}'{why}. '{plugin}' comes from {self._origin(plugin)}, '{previous}' from "
            f"{self._origin(previous)}. Name '{other}:{name}' to use the other one, uninstall one, or ask its "
            f"author to rename the {kind}."
        )

    def get(self, kind: str, name: str) -> Entry:
        """The entry ``name``, or ``plugin:name`` for one plugin's when two register the same name."""
        table = self.entries[kind]
        if ":" in name and name in self._qualified.get(kind, {}):
            return self._qualified[kind][name]
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(table)) or "none"
            raise UnknownNameError(
                f"Unknown {kind} '{name}'.{hint} Registered {kind}s: {known}. "
                f"Run 'refinekit plugins' to see which plugins are loaded."
            )
        return table[name]

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        return sorted(n for n in self.entries[kind] if fnmatch.fnmatch(n, pattern))


def _describe(exc: BaseException) -> str:
    """'TypeError: message', and what a SystemExit means (a plugin must never end the process)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}): it called sys.exit(), which a plugin must not do"
    return f"{type(exc).__name__}: {exc}"


def _allowed_plugins() -> set[str] | None:
    value = os.environ.get("REFINEKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {p.strip() for p in value.split(",") if p.strip()}


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use (importing refinekit loads no plugin)."""
    global _registry
    if _registry is None:
        _registry = Registry(load_entry_points=os.environ.get("REFINEKIT_DISABLE_ENTRY_POINTS", "") in ("", "0"))
    return _registry


def reset_registry() -> None:
    """Forget loaded plugins, so the next call reloads them (tests, changed environment)."""
    global _registry
    _registry = None


def pinned_requirements() -> list[str]:
    """``name==version`` for refinekit and every installed distribution with a ``refinekit`` entry point.

    Read from the installed metadata, not the loaded registry, so a plugin that
    failed to import or is filtered by ``REFINEKIT_LOAD_PLUGINS`` is still pinned.
    An editable or URL install gets a comment with its source, because its
    version alone cannot be installed from an index.
    """
    dists = {"refinekit": importlib.metadata.distribution("refinekit")}
    for ep in importlib.metadata.entry_points(group="refinekit"):
        if ep.dist is not None:
            dists.setdefault(ep.dist.metadata["Name"], ep.dist)
    lines = []
    for name in sorted(dists, key=lambda n: (n != "refinekit", n.lower())):
        dist = dists[name]
        line = f"{dist.metadata['Name']}=={dist.version}"
        source = _direct_url(dist)
        lines.append(f"{line}  # {source}" if source else line)
    return lines


def _direct_url(dist: importlib.metadata.Distribution) -> str:
    """Where a distribution was installed from when not from an index (PEP 610 ``direct_url.json``)."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return ""
    url = info.get("url", "")
    if not url:
        return ""
    if info.get("dir_info", {}).get("editable"):
        return f"editable install from {url}"
    return f"installed from {url}"


def iter_plugins() -> Iterator[PluginInfo]:
    registry = get_registry()
    _ = registry.entries  # fills each plugin's component list
    yield from registry.infos.values()


# -- typed facade: core code calls these, never pm.hook ---------------------
def _build(kind: str, name: str, channels: int, options: dict[str, Any]) -> Any:
    """Call a component factory, turning options it does not take into a ConfigError that lists those it does."""
    factory = get_registry().get(kind, name).factory
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins and C types have no signature: just call
        signature = None
    if signature is not None:
        try:
            signature.bind(channels=channels, **options)
        except TypeError as exc:
            accepted = [p for p in signature.parameters if p not in ("self", "channels")]
            raise ConfigError(
                f"{kind}.options {options} do not fit {kind} '{name}' ({exc}); "
                f"it takes: {', '.join(accepted) or 'no options'}"
            ) from None
    try:
        return factory(channels=channels, **options)
    except (RefinekitError, KeyboardInterrupt):
        raise  # the component checked its options itself and said what is wrong
    except Exception as exc:
        # Whose fault? If the component builds with its defaults, the options the user chose are wrong;
        # if it fails even so, the plugin is broken, whatever the user wrote.
        if options and _builds_with_defaults(factory, channels):
            raise ConfigError(
                f"{kind} '{name}' cannot be built with {kind}.options {options} ({_describe(exc)}); "
                "check their types and values"
            ) from exc
        entry = get_registry().get(kind, name)
        raise PluginError(
            f"{kind} '{name}' of plugin '{entry.plugin}' ({get_registry()._origin(entry.plugin)}) failed to build "
            f"for {channels}-channel images{' with its default options' if not options else ''}: {_describe(exc)}. "
            f"This is a bug in that plugin, not in your settings: report it to its author"
        ) from exc


def _builds_with_defaults(factory: Any, channels: int) -> bool:
    try:
        factory(channels=channels)
    except Exception:
        return False
    return True


def create_refiner(name: str, channels: int = 1, **options: Any):
    """Build refiner ``name`` for ``channels``-channel images. Unknown names list close matches."""
    return _build("refiner", name, channels, options)


def create_discriminator(name: str, channels: int = 1, **options: Any):
    """Build discriminator ``name``; its output is (B, 2, h, w) logits, channel 1 = real."""
    return _build("discriminator", name, channels, options)


def create_regularizer(name: str, channels: int = 1, **options: Any):
    """Build self-regulariser ``name``: a module called as ``reg(refined, synthetic) -> loss``."""
    return _build("regularizer", name, channels, options)


def get_dataset(name: str) -> Entry:
    """The dataset entry ``name``; load with ``entry.factory(path, channels=, size=, limit=, seed=, **options)``."""
    return get_registry().get("dataset", name)


def get_recipe(name: str):
    """The :class:`refinekit.plugins.recipe.Recipe` called ``name``."""
    return get_registry().get("recipe", name).factory


def get_task(name: str):
    """A fresh evaluation task ``name``."""
    return get_registry().get("task", name).factory()


def list_refiners(pattern: str = "*") -> list[str]:
    return get_registry().names("refiner", pattern)


def list_discriminators(pattern: str = "*") -> list[str]:
    return get_registry().names("discriminator", pattern)


def list_regularizers(pattern: str = "*") -> list[str]:
    return get_registry().names("regularizer", pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    return get_registry().names("dataset", pattern)


def list_recipes(pattern: str = "*") -> list[str]:
    return get_registry().names("recipe", pattern)


def list_tasks(pattern: str = "*") -> list[str]:
    return get_registry().names("task", pattern)
