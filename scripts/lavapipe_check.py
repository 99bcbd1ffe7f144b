"""Checks that LiteRT's real GPU engine runs here (ML Drift on WebGPU/Vulkan, e.g. on Mesa lavapipe).

Converts a tiny PyTorch model (conv, conv, linear; rank <= 4, fixed shapes) with litert_torch, runs it
with the CPU interpreter (XNNPACK) and with CompiledModel on the GPU accelerator (fp32 enforced, then
the default precision, which is fp16), and prints one JSON object on stdout. Exits 1 when the GPU
engine is unavailable, not fully accelerated, or wrong beyond --f32-tol with fp32 enforced.

    eval "$(bash scripts/install_lavapipe.sh)"
    python scripts/lavapipe_check.py [--verbose] [--keep DIR]

Needs mobpose installed (its export extra: torch 2.13.0, litert-torch 0.10.0, ai-edge-litert 2.3.0).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

from mobpose.export.runtime import native_output


def vulkan_devices() -> list[dict] | str:
    """Physical devices that the Vulkan loader sees (name, type, API version), via ctypes."""
    try:
        vk = ctypes.CDLL("libvulkan.so.1")
    except OSError as e:
        return f"no Vulkan loader: {e}"

    class InstanceCreateInfo(ctypes.Structure):
        _fields_ = [
            ("sType", ctypes.c_int),
            ("pNext", ctypes.c_void_p),
            ("flags", ctypes.c_uint32),
            ("pApplicationInfo", ctypes.c_void_p),
            ("enabledLayerCount", ctypes.c_uint32),
            ("ppEnabledLayerNames", ctypes.c_void_p),
            ("enabledExtensionCount", ctypes.c_uint32),
            ("ppEnabledExtensionNames", ctypes.c_void_p),
        ]

    vk.vkCreateInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    vk.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    vk.vkGetPhysicalDeviceProperties.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    vk.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    info = InstanceCreateInfo(1, None, 0, None, 0, None, 0, None)  # 1 = INSTANCE_CREATE_INFO
    inst = ctypes.c_void_p()
    res = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(inst))
    if res != 0:
        return f"vkCreateInstance failed: {res}"
    try:
        n = ctypes.c_uint32()
        vk.vkEnumeratePhysicalDevices(inst, ctypes.byref(n), None)
        handles = (ctypes.c_void_p * n.value)()
        vk.vkEnumeratePhysicalDevices(inst, ctypes.byref(n), handles)
        types = {0: "other", 1: "integrated", 2: "discrete", 3: "virtual", 4: "cpu"}
        out = []
        for h in handles[: n.value]:
            props = ctypes.create_string_buffer(4096)  # VkPhysicalDeviceProperties is 824 bytes
            vk.vkGetPhysicalDeviceProperties(h, props)
            api, _drv, _vendor, _dev, dtype = np.frombuffer(props.raw[:20], dtype=np.uint32)
            name = props.raw[20 : 20 + 256].split(b"\0", 1)[0].decode()
            version = f"{api >> 22}.{(api >> 12) & 0x3FF}.{api & 0xFFF}"
            out.append({"name": name, "type": types.get(int(dtype), str(dtype)), "api": version})
        return out
    finally:
        vk.vkDestroyInstance(inst, None)


def build_and_convert(path: str, logs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Writes the tiny model's .tflite to path; returns (input, PyTorch output)."""
    import litert_torch
    import torch

    litert_torch.config.show_progress = False
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16 * 8 * 8, 10)

        def forward(self, image):
            y = torch.relu(self.c2(torch.relu(self.c1(image))))
            return self.fc(y.reshape(1, 16 * 8 * 8))

    model = Tiny().eval()
    x = torch.randn(1, 3, 16, 16)
    with native_output(logs):
        litert_torch.signature("tiny", model, sample_kwargs={"image": x}).convert().export(path)
    with torch.no_grad():
        ref = model(x).numpy()
    return x.numpy(), ref


def run_gpu(path: str, x: np.ndarray, out_size: int, enforce_f32: bool, logs: list[str]):
    from ai_edge_litert.compiled_model import (
        CompiledModel,
        GpuOptions,
        HardwareAccelerator,
        Options,
    )

    opts = Options(
        hardware_accelerators=HardwareAccelerator.GPU,
        gpu_options=GpuOptions(enforce_f32=enforce_f32),
    )
    with native_output(logs):
        cm = CompiledModel.from_file(path, options=opts)
        full = cm.is_fully_accelerated()
        ins, outs = cm.create_input_buffers(0), cm.create_output_buffers(0)
        ins[0].write(x)
        cm.run_by_index(0, ins, outs)
        y = outs[0].read(out_size, np.float32)
        t0 = time.perf_counter()  # a second run, timed up to the read (runs may be asynchronous)
        cm.run_by_index(0, ins, outs)
        outs[0].read(out_size, np.float32)
        ms = (time.perf_counter() - t0) * 1e3
    return full, y, ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keep", help="folder to write tiny.tflite to (default: a temp folder)")
    ap.add_argument("--f32-tol", type=float, default=1e-4, help="max |GPU-CPU| with fp32 enforced")
    ap.add_argument("--verbose", action="store_true", help="echo the captured native logs to stderr")
    args = ap.parse_args()

    logs: list[str] = []
    result: dict = {"VK_ICD_FILENAMES": os.environ.get("VK_ICD_FILENAMES")}
    ok = False
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tiny.tflite")
        try:
            x, ref = build_and_convert(path, logs)
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_path=path, num_threads=1)
            cpu = it.get_signature_runner("tiny")(image=x)["output_0"]
            result["cpu_vs_torch_max_abs_diff"] = float(np.abs(cpu - ref).max())

            full, y32, ms32 = run_gpu(path, x, cpu.size, True, logs)
            result["fully_accelerated"] = full
            result["gpu_f32_max_abs_diff"] = float(np.abs(y32.reshape(cpu.shape) - cpu).max())
            full16, y16, ms16 = run_gpu(path, x, cpu.size, False, logs)
            result["fully_accelerated_default_precision"] = full16
            d16 = np.abs(y16.reshape(cpu.shape) - cpu).max()
            result["gpu_default_precision_max_abs_diff"] = float(d16)
            result["gpu_default_precision_max_rel_diff"] = float(d16 / np.abs(cpu).max())
            result["gpu_run_ms_f32"] = round(ms32, 3)
            result["gpu_run_ms_default"] = round(ms16, 3)
            ok = full and full16 and result["gpu_f32_max_abs_diff"] <= args.f32_tol
        except Exception as e:  # noqa: BLE001 - reported in the JSON, then exit 1
            result["error"] = f"{type(e).__name__}: {e}".strip()[:2000]
    text = "".join(logs)
    adapters = sorted(set(re.findall(r"Selected adapter: ([^\n]+)", text)))
    result["webgpu_adapter"] = adapters[0] if len(adapters) == 1 else adapters or None
    result["vulkan_devices"] = vulkan_devices()
    result["ok"] = ok
    if args.verbose or not ok:
        sys.stderr.write(text)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
