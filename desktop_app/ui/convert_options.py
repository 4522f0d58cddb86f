"""The Convert / Quantize dialog's options: the quant, the converted type, the importance matrix and
whether to keep the intermediate file, turned into a :class:`ConvertRequest`.

Kept apart from the dialog, which runs the plan and the job: this part only asks the user (and
their file pickers) and never touches the disk itself.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QFormLayout, QVBoxLayout, QWidget

from desktop_app.core.convert.pipeline import ConvertRequest
from desktop_app.core.gguf.quant_names import STANDARD_QUANTS
from desktop_app.ui.widgets import muted

OUTTYPES = (("F16", "f16"), ("BF16", "bf16"), ("Q8_0", "q8_0"))
IMATRIX_CHOICES = (
    ("None", "none"),
    ("From a file…", "file"),
    ("Compute from QuantDesk's calibration text", "default"),
    ("Compute from a text file…", "text"),
)


class ConvertOptions(QWidget):
    """The options form; ``changed`` when an option that changes the disk plan changes."""

    changed = Signal()

    def __init__(self, kind: str, quant: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind  # "hub" | "folder" | "gguf": a GGUF is only quantized
        self._files = {"file": "", "text": ""}  # the imatrix file, the calibration text file
        form = QFormLayout(self)
        form.setContentsMargins(0, 4, 0, 4)
        form.addRow("Quantize to", self._build_quant(quant))
        self.outtype = QComboBox()
        for label, value in OUTTYPES:
            self.outtype.addItem(label, value)
        form.addRow("Convert to", self.outtype)
        form.addRow("Importance matrix", self._build_imatrix())
        self.keep = QCheckBox("Keep the intermediate F16")
        self.keep.setToolTip("Keep the converted file beside the quant, to make other quants from it later")
        form.addRow("", self.keep)
        form.setRowVisible(self.outtype, kind != "gguf")
        form.setRowVisible(self.keep, kind != "gguf")
        self.quant.currentIndexChanged.connect(self._changed)
        self.outtype.currentIndexChanged.connect(self._changed)
        self.imatrix.activated.connect(self._imatrix_activated)
        self._changed()

    def _build_quant(self, quant: str | None) -> QComboBox:
        """The standard quants, and for a checkpoint "None" (stop at the converted file)."""
        self.quant = QComboBox()
        for q in STANDARD_QUANTS:
            self.quant.addItem(q, q)
        if self.kind != "gguf":
            self.quant.addItem("None — keep F16", "")
        if quant and self.quant.findData(quant) < 0:
            self.quant.insertItem(0, quant, quant)
        self.quant.setCurrentIndex(max(0, self.quant.findData(quant or "")))
        return self.quant

    def _build_imatrix(self) -> QVBoxLayout:
        self.imatrix = QComboBox()
        for label, value in IMATRIX_CHOICES:
            self.imatrix.addItem(label, value)
        self.imatrix.setToolTip("An importance matrix keeps the weights that matter most more precise; "
                                "it helps most at 4 bits and below.")  # fmt: skip
        self.imatrix_file = muted("")
        self.imatrix_file.hide()
        column = QVBoxLayout()
        column.addWidget(self.imatrix)
        column.addWidget(self.imatrix_file)
        return column

    def chosen_quant(self) -> str | None:
        return self.quant.currentData() or None

    def choose_imatrix(self, choice: str, path: str = "") -> None:
        """Set the importance matrix choice ("none", "file", "default", "text") and its file."""
        if choice in self._files:
            self._files[choice] = path
        self.imatrix.setCurrentIndex(self.imatrix.findData(choice))
        chosen = self._files.get(choice, "")
        self.imatrix_file.setText(f"{'Matrix' if choice == 'file' else 'Text'}: {chosen}" if chosen else "")
        self.imatrix_file.setVisible(bool(chosen))

    def _imatrix_activated(self, index: int) -> None:
        """The user picked an entry; the two "…" entries ask for their file (none chosen: back to None)."""
        choice = self.imatrix.itemData(index)
        path = ""
        if choice == "file":
            path, _ = QFileDialog.getOpenFileName(self, "Choose an importance matrix", "",
                                                  "Importance matrix (*.gguf *.dat);;All files (*)")  # fmt: skip
        elif choice == "text":
            path, _ = QFileDialog.getOpenFileName(self, "Choose a calibration text", "",
                                                  "Text (*.txt *.md *.raw);;All files (*)")  # fmt: skip
        if choice in self._files and not path:
            choice = "none"
        self.choose_imatrix(choice, path)

    def request(self, source: str, outdir: str) -> ConvertRequest:
        """The job as chosen (the calibration text is read later, in the worker: see :meth:`calibration`)."""
        quant = self.chosen_quant()
        imatrix = self._files["file"] if quant and self.imatrix.currentData() == "file" else None
        keep = bool(quant) and self.kind != "gguf" and self.keep.isChecked()
        return ConvertRequest(source, outdir, outtype=self.outtype.currentData(), quant=quant, imatrix=imatrix or None,
                              keep_intermediate=keep)  # fmt: skip

    def calibration(self) -> str:
        """Where the worker reads the calibration text from: "default" (QuantDesk's), a file, or "" (none)."""
        if not self.chosen_quant():
            return ""
        choice = self.imatrix.currentData()
        return "default" if choice == "default" else self._files["text"] if choice == "text" else ""

    def _changed(self, *_args) -> None:
        """The rows that apply to the choice: no quant, no matrix and nothing intermediate to keep."""
        quant, outtype = self.chosen_quant(), self.outtype.currentText()
        none = self.quant.findData("")
        if none >= 0:
            self.quant.setItemText(none, f"None — keep {outtype}")
        self.keep.setText(f"Keep the intermediate {outtype}")
        self.keep.setEnabled(quant is not None)
        self.imatrix.setEnabled(quant is not None)
        self.changed.emit()
