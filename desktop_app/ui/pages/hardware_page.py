"""Hardware: what this machine has and what this llama.cpp build can use of it."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.hardware import HardwareInfo
from desktop_app.core.runtime import RuntimeChoice
from desktop_app.core.units import format_memory
from desktop_app.ui.context import AppContext
from desktop_app.ui.widgets import Card, CommandBox, KeyValueGrid, PageHeader, muted, scrolling_body


class HardwarePage(QWidget):
    title = "Hardware"

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 20)
        outer.addLayout(self._build_header())
        self.status = muted("Looking at your hardware…")
        outer.addWidget(self.status)
        self._build_cards(QGridLayout(scrolling_body(outer)))
        ctx.hardware_changed.connect(self.show_hardware)
        ctx.hardware_failed.connect(self._failed)
        if ctx.hardware is not None:
            self.show_hardware(ctx.hardware)

    def _build_header(self) -> QHBoxLayout:
        """The page header with the "Detect again" button beside it."""
        top = QHBoxLayout()
        top.addWidget(
            PageHeader(
                "Hardware",
                "What this computer has for running models, and what the installed llama.cpp can use.",
            ),
            1,
        )
        self.refresh_button = QPushButton("Detect again")
        self.refresh_button.setToolTip("Look at the hardware again (e.g. after installing a GPU build)")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        return top

    def _build_cards(self, grid: QGridLayout) -> None:
        """Processor, memory, GPU and llama.cpp cards in a two-by-two grid."""
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(14)

        self.cpu_card = Card("Processor")
        self.cpu_grid = self.cpu_card.add(KeyValueGrid())

        self.mem_card = Card("Memory (RAM)")
        self.ram_bar = QProgressBar()
        self.ram_bar.setTextVisible(True)
        self.mem_card.add(self.ram_bar)
        self.mem_grid = self.mem_card.add(KeyValueGrid())
        self.mem_grid.set_rows([("Total", "…"), ("Available now", "…")])
        self.mem_card.add(muted("Models are loaded into RAM unless they are offloaded to a GPU. Updated every second."))

        self.gpu_card = Card("Graphics (GPU)")
        self.gpu_box = QVBoxLayout()
        self.gpu_card.body.addLayout(self.gpu_box)

        self._build_llama_card()

        grid.addWidget(self.cpu_card, 0, 0)
        grid.addWidget(self.mem_card, 0, 1)
        grid.addWidget(self.gpu_card, 1, 0)
        grid.addWidget(self.llama_card, 1, 1)
        for card in (self.cpu_card, self.mem_card, self.gpu_card, self.llama_card):
            card.body.addStretch(1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 1)

    def _build_llama_card(self) -> None:
        """The llama.cpp build: its facts, GPU offload, and the command for a GPU build."""
        self.llama_card = Card("llama.cpp engine")
        self.llama_grid = self.llama_card.add(KeyValueGrid())
        self.offload_label = self.llama_card.add(QLabel())
        self.offload_label.setWordWrap(True)
        self.backend_row = QWidget()
        br = QHBoxLayout(self.backend_row)
        br.setContentsMargins(0, 0, 0, 0)
        br.addWidget(QLabel("Get a GPU build for"))
        self.backend_combo = QComboBox()
        self.backend_combo.setToolTip("Which GPU backend to build llama.cpp with")
        br.addWidget(self.backend_combo)
        br.addStretch(1)
        self.llama_card.add(self.backend_row)
        self.command = self.llama_card.add(CommandBox())
        self.command_hint = self.llama_card.add(muted(""))
        self.backend_combo.currentIndexChanged.connect(
            lambda _i: self.command.set_command(self.backend_combo.currentData() or "")
        )

    def refresh(self) -> None:
        self.status.setText("Looking at your hardware and checking how llama.cpp runs on it…")
        self.status.show()
        self.ctx.detect_hardware(recheck_runtime=True)

    def _failed(self, text: str) -> None:
        self.status.setText(text)
        self.ctx.notify(text, "error")

    def show_hardware(self, hw: HardwareInfo) -> None:
        self.status.hide()
        c = hw.cpu
        self.cpu_grid.set_rows(
            [
                ("Name", c.name),
                ("Cores", f"{c.physical_cores or '?'} physical, {c.logical_cores or '?'} logical"),
                ("Architecture", c.architecture or "?"),
                ("SIMD features", " · ".join(c.features) or "unknown"),
                ("Operating system", hw.os),
            ]
        )
        self.update_memory(hw.ram.total_bytes, hw.ram.available_bytes)
        self._show_gpus(hw)
        self._show_llama(hw)

    def update_memory(self, total: int, available: int) -> None:
        used = total - available
        self.ram_bar.setRange(0, 1000)
        self.ram_bar.setValue(int(used / total * 1000) if total else 0)
        self.ram_bar.setFormat(f"{format_memory(used)} in use of {format_memory(total)}")
        self.mem_grid.set_value("Total", format_memory(total))
        self.mem_grid.set_value("Available now", format_memory(available))

    def _show_gpus(self, hw: HardwareInfo) -> None:
        while self.gpu_box.count():
            item = self.gpu_box.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        if not hw.gpus:
            self.gpu_box.addWidget(QLabel("No GPU found. Models run on the CPU, using system RAM."))
            return
        for g in hw.gpus:
            grid = KeyValueGrid()
            memory = "Unified (shared with system RAM)" if g.unified_memory else "Dedicated VRAM"
            rows = [
                ("Name", g.name),
                ("Vendor", g.vendor.upper() if g.vendor in ("amd", "nvidia") else g.vendor.capitalize()),
                ("Memory", memory),
                ("VRAM total", format_memory(g.vram_total_bytes)),
                ("VRAM free", format_memory(g.vram_free_bytes)),
                ("Used through", g.backend),
            ]
            if g.note:
                rows.append(("Note", g.note))
            grid.set_rows(rows)
            self.gpu_box.addWidget(grid)

    def _show_llama(self, hw: HardwareInfo) -> None:
        ll = hw.llama_cpp
        rows = [
            ("llama-cpp-python", ll.version or "not installed"),
            ("ggml", ll.ggml_version or "?"),
            ("Backends", ", ".join(ll.backends) or "none"),
        ]
        for d in ll.devices:
            mem = f" — {format_memory(d.memory_total_bytes)}" if d.memory_total_bytes and d.type != "cpu" else ""
            rows.append((f"Device {d.name}", f"{d.description} ({d.type.upper()}){mem}"))
        rows += runtime_rows(ll.runtime)
        if ll.error and not (ll.runtime is not None and ll.error == ll.runtime.reason):
            rows.append(("Problem", ll.error))
        self.llama_grid.set_rows(rows)
        if ll.gpu_offload_supported:
            self.offload_label.setObjectName("badgeOk")
            self.offload_label.setText("✔ This build can offload layers to the GPU.")
        else:
            self.offload_label.setObjectName("badgeWarn")
            self.offload_label.setText(
                "✘ This build cannot offload to a GPU: models run on the CPU only."
                if ll.installed
                else "✘ llama-cpp-python is not installed: models cannot run."
            )
        self.offload_label.style().unpolish(self.offload_label)
        self.offload_label.style().polish(self.offload_label)
        commands = ll.gpu_build_commands
        self.backend_combo.blockSignals(True)
        self.backend_combo.clear()
        for backend, command in commands.items():
            self.backend_combo.addItem(backend, command)
        chosen = next((b for b, c in commands.items() if c == ll.gpu_build_command), None)
        if chosen:
            self.backend_combo.setCurrentText(chosen)
        self.backend_combo.blockSignals(False)
        self.backend_row.setVisible(bool(commands))
        self.command.setVisible(bool(commands))
        self.command.set_command(self.backend_combo.currentData() or "")
        self.command_hint.setText(ll.gpu_build_hint)
        self.command_hint.setVisible(bool(ll.gpu_build_hint))


def runtime_rows(rt: RuntimeChoice | None) -> list[tuple[str, str]]:
    """The runtime check's outcome as rows: configuration, why, threads, measured speed."""
    if rt is None:
        return []
    when = "remembered from the first check of this build on this CPU" if rt.remembered else (
        f"checked now in {rt.check_s:.1f} s")  # fmt: skip
    rows = [("Runs as", rt.label + ("" if rt.works else " (no configuration worked)")), ("Why", rt.reason)]
    threads = f"{rt.threads} ({rt.threads_basis})"
    if rt.threads_basis == "set in Settings":
        threads += f"; llama.cpp's default here is {rt.default_threads}"
    rows.append(("Threads", threads))
    if rt.checked_tokens_per_s:
        busy = f"; {rt.busy_note}: press Detect again when the computer is idle" if rt.busy_note else ""
        rows.append(("Checked speed", f"{rt.checked_tokens_per_s:.1f} tokens/s generating, "
                     f"{rt.checked_prompt_tokens_per_s or 0:.0f} tokens/s reading a prompt, "
                     f"on the CPU with {rt.check_model} ({when}){busy}"))  # fmt: skip
    return rows
