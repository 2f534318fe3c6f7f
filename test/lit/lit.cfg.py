# lit configuration for gemmac's FileCheck tests. Run through ctest (the build writes
# lit.site.cfg.py with the tool paths); each .ir file is a test.
import os

import lit.formats

config.name = "gemmac"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".ir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.environment["PATH"] = os.pathsep.join(
    [config.gemmac_tools_dirs, config.llvm_tools_dir, config.environment.get("PATH", "")])
config.substitutions.append(("%gemmac_examples", os.path.join(config.gemmac_source_root, "examples")))
# Halide code generation runs uninstrumented LLVM inside the tool; the sanitized build skips it.
if config.gemmac_sanitize.upper() not in ("ON", "1", "TRUE", "YES"):
    config.available_features.add("halide-codegen")
# The runtime built with ASan and UBSan (runtime/CMakeLists.txt), to link compiled models with.
config.substitutions.append(("%gemma_rt_sanitized", config.gemma_rt_sanitized))
config.substitutions.append(("%gemma_rt_main_sanitized", config.gemma_rt_main_sanitized))
config.substitutions.append(
    ("%fixtures", os.path.join(config.gemmac_source_root, "test", "fixtures")))
