// JumpReLU (Rajamanoharan et al. 2024, "Jumping Ahead"): z = pre * H(pre - theta), theta = exp(log_theta) per
// latent, with straight-through estimators for the threshold through a rectangle kernel of bandwidth eps:
//   d z / d theta  ~ -(theta / eps) * K((pre - theta) / eps),   K(u) = 1 if |u| < 1/2 else 0,
//   d L0 / d theta ~ -(1 / eps) * K((pre - theta) / eps).
// Compiled by NVRTC (tests/nvrtc_compile.rs builds it for sm_80 and sm_90 without a GPU).

__device__ __forceinline__ float rectangle(float u) { return fabsf(u) < 0.5f ? 1.0f : 0.0f; }

// Forward: z[r, j] = pre[r, j] if pre[r, j] > theta[j] else 0 (pre already includes b_enc).
extern "C" __global__ void jumprelu_forward(const float* __restrict__ pre, const float* __restrict__ log_theta,
                                            long long rows, int m, float* __restrict__ z) {
    const long long n = rows * (long long)m;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float theta = expf(log_theta[i % m]);
        z[i] = pre[i] > theta ? pre[i] : 0.0f;
    }
}

// Backward, elementwise part: dpre[r, j] = dz[r, j] where the latent fired (the jump's gradient flows only there).
extern "C" __global__ void jumprelu_backward_pre(const float* __restrict__ pre, const float* __restrict__ log_theta,
                                                 const float* __restrict__ dz, long long rows, int m,
                                                 float* __restrict__ dpre) {
    const long long n = rows * (long long)m;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float theta = expf(log_theta[i % m]);
        dpre[i] = pre[i] > theta ? dz[i] : 0.0f;
    }
}

// Backward, threshold: d log_theta[j] = theta * sum over rows (increasing) of
//   dz[r, j] * (-(theta / eps) K) + l0_coeff * (-(1 / eps) K),   K = K((pre[r, j] - theta) / eps),
// the chain rule through theta = exp(log_theta). One thread per latent, rows in order: no float atomics.
extern "C" __global__ void jumprelu_backward_threshold(const float* __restrict__ pre,
                                                       const float* __restrict__ log_theta,
                                                       const float* __restrict__ dz, long long rows, int m,
                                                       float eps, float l0_coeff, float* __restrict__ dlog_theta) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    const float theta = expf(log_theta[j]);
    float acc = 0.0f;
    for (long long r = 0; r < rows; ++r) {
        const float kern = rectangle((pre[r * m + j] - theta) / eps);
        acc += dz[r * m + j] * (-(theta / eps) * kern) + l0_coeff * (-(1.0f / eps) * kern);
    }
    dlog_theta[j] = theta * acc;
}
