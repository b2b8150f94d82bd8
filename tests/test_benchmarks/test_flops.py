"""MAC counts of ONNX graphs: the CycleGAN ResNet-9 generator as exported, and tiny graphs counted by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from uda_trt.benchmarks.flops import MacCount, count_macs

# ResNet-9 (ngf 64) at 256x256, counted layer by layer (per output pixel: C_out * C_in/group * k*k; transposed
# convs per input pixel: C_in * C_out * k*k):
#   c7s1-64 and c7s1-3 at 256^2:  2 * 256*256 * 64*3*49   =  1,233,125,376
#   d128 at 128^2, d256 at 64^2:   2 * 128*128 * 128*64*9  =  2,415,919,104
#   18 residual convs at 64^2:    18 * 64*64 * 256*256*9   = 43,486,543,872
#   u128 from 64^2, u64 from 128^2: 2 * 64*64 * 256*128*9  =  2,415,919,104
RESNET9_256_MACS = 49_551_507_456
RESNET9_256_CONV_TRANSPOSE_MACS = 2_415_919_104


def _images(batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
    return {"images": (batch, height, width, 3)}


@pytest.fixture(scope="module")
def resnet9() -> onnx.ModelProto:
    """The reference CycleGAN generator (ngf 64, 9 blocks) in the uint8 NHWC translator graph, as export writes it."""
    from uda_trt.export.graphs import TranslatorGraph
    from uda_trt.export.onnx_export import export_graph
    from uda_trt.train.networks import ResnetGenerator

    return export_graph(TranslatorGraph(ResnetGenerator(ngf=64, n_blocks=9)), "translated", (128, 64))


def test_resnet9_256_matches_the_hand_count(resnet9):
    count = count_macs(resnet9, _images(1, 256, 256))
    assert count.total == pytest.approx(49.55e9, rel=0.005)
    assert count.total == RESNET9_256_MACS
    assert count.by_op_type == {
        "Conv": RESNET9_256_MACS - RESNET9_256_CONV_TRANSPOSE_MACS,
        "ConvTranspose": RESNET9_256_CONV_TRANSPOSE_MACS,
    }
    # The often quoted 56.8 G counts the two transposed convs per output pixel, 4x (their stride squared) too high.
    assert count.total + 3 * RESNET9_256_CONV_TRANSPOSE_MACS == pytest.approx(56.8e9, rel=0.001)


def test_resnet9_scales_with_pixels_and_batch(resnet9):
    base = count_macs(resnet9, _images(1, 256, 256)).total
    assert count_macs(resnet9, _images(1, 256, 512)).total == 2 * base
    assert count_macs(resnet9, _images(1, 512, 256)).total == 2 * base
    assert count_macs(resnet9, _images(3, 256, 256)).total == 3 * base
    assert count_macs(resnet9, _images(1, 512, 1024)).total == 8 * base == 396_412_059_648


def test_resnet9_as_stem_onnx_counts_its_rewritten_output_layer(resnet9):
    """STEM.onnx computes the output layer as a stride-2 8x8 Conv to 4 x 3 phase channels and crops it with sizes
    taken from the input's shape (export.output_phases): counted once those sizes are constants."""
    from uda_trt.export.onnx_export import with_output_phases

    rewritten, rewrites = with_output_phases(resnet9)
    assert len(rewrites) == 1
    original_output_layer = 256 * 256 * 3 * 64 * 7 * 7
    phases = 128 * 128 * 12 * 64 * 8 * 8
    count = count_macs(rewritten, _images(1, 256, 256))
    assert count.total == RESNET9_256_MACS - original_output_layer + phases
    assert count_macs(rewritten, _images(2, 260, 264)).total > 2 * count.total  # other sizes too


def test_model_is_not_modified(resnet9):
    before = resnet9.SerializeToString()
    count_macs(resnet9, _images(1, 64, 64))
    assert resnet9.SerializeToString() == before


def _init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _tiny_model() -> onnx.ModelProto:
    """x (N, 4, H, W) -> Conv 4->8 3x3 pad 1 -> ConvTranspose 8->6 2x2 stride 2, group 2 -> MatMul by (2W, 7)."""
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["a"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["a", "w_up"], ["b"], name="up", strides=[2, 2], group=2),
        helper.make_node("MatMul", ["b", "w_mm"], ["y"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, "H2", 7])],
        initializer=[_init("w_conv", (8, 4, 3, 3)), _init("w_up", (8, 3, 2, 2)), _init("w_mm", (12, 7))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_tiny_graph_exact_counts(tmp_path):
    n, h, w = 2, 5, 6
    conv = n * 8 * h * w * (4 * 3 * 3)  # output elements * C_in * kernel
    up = n * 8 * h * w * (3 * 2 * 2)  # INPUT elements * C_out/group * kernel
    matmul = n * 6 * (2 * h) * 7 * (2 * w)  # batch * M * N * K
    assert (conv, up, matmul) == (17_280, 5_760, 10_080)
    expected = MacCount(total=conv + up + matmul, by_op_type={"Conv": conv, "ConvTranspose": up, "MatMul": matmul})
    assert count_macs(_tiny_model(), {"x": (n, 4, h, w)}) == expected
    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny_model(), path)
    assert count_macs(path, {"x": (n, 4, h, w)}) == expected


def test_gemm_with_transposed_a():
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="gemm", transA=1)],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["K", "M"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["M", 4])],
        initializer=[_init("b", (5, 4)), _init("c", (4,))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert count_macs(model, {"a": (5, 3)}) == MacCount(total=3 * 4 * 5, by_op_type={"Gemm": 60})


def test_unknown_shape_names_the_node():
    # Reshape to a shape only known at run time: the MatMul after it has no concrete K.
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
            helper.make_node("MatMul", ["r", "w"], ["y"], name="matmul_after_reshape"),
        ],
        "unknown",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[_init("w", (4, 5))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="MatMul node 'matmul_after_reshape'"):
        count_macs(model, {"x": (1, 12), "shape": (2,)})


def test_bad_input_shapes_raise():
    model = _tiny_model()
    with pytest.raises(ValueError, match="'images'.*not a graph input"):
        count_macs(model, {"images": (1, 4, 5, 6)})
    with pytest.raises(ValueError, match="rank 3"):
        count_macs(model, {"x": (1, 5, 6)})
    with pytest.raises(ValueError, match="dimension 1 is fixed to 4"):
        count_macs(model, {"x": (1, 3, 5, 6)})
