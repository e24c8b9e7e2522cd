// Adam and decoder-row handling on the GPU (issue #13); compiled by NVRTC at run time (tests/nvrtc_compile.rs
// builds it for sm_80 and sm_90 without a GPU).

// One Adam step in the operation order of husai_kernels::adam (PyTorch's): m += (1 - b1) (g - m);
// v = b2 v + (1 - b2) g^2; p -= step_size * (m / (sqrt(v) / bc2_sqrt + eps)), with step_size = lr / bc1 and
// bc2_sqrt = sqrt(bc2) computed on the host in double, as the CPU does. Compiled without FMA contraction and with
// IEEE division and square root, it gives the CPU's bits.
extern "C" __global__ void adam_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m1,
                                     float* __restrict__ m2, long long n, float step_size, float bc2_sqrt,
                                     float beta2, float w1, float w2, float eps) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float gi = g[i];
        const float m = m1[i] + w1 * (gi - m1[i]);
        const float v = beta2 * m2[i] + w2 * gi * gi;
        m1[i] = m;
        m2[i] = v;
        const float denom = sqrtf(v) / bc2_sqrt + eps;
        p[i] -= step_size * (m / denom);
    }
}

// The global gradient norm's squares, per block of a tensor: partial[blockIdx.x] = sum of g^2 over its elements,
// in a fixed tree; the host sums the partials in order (then clips, as SAELens's SAETrainer clips at 1).
extern "C" __global__ void square_sums(const float* __restrict__ g, long long n, float* __restrict__ partial) {
    __shared__ float s[1024];
    float acc = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        acc += g[i] * g[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int w = blockDim.x >> 1; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// x *= scale (gradient clipping by the global norm).
extern "C" __global__ void scale_in_place(float* __restrict__ x, long long n, float scale) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] *= scale;
}

// Decoder rows back to unit norm after a step: one block per row (blockDim a power of two <= 1024); the norm's sum
// of squares in a fixed tree, in double as the CPU engine does.
extern "C" __global__ void unit_rows(float* __restrict__ w, int d) {
    __shared__ double s[1024];
    float* row = w + (size_t)blockIdx.x * d;
    double acc = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) acc += (double)row[c] * (double)row[c];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int w2 = blockDim.x >> 1; w2 > 0; w2 >>= 1) {
        if (threadIdx.x < w2) s[threadIdx.x] += s[threadIdx.x + w2];
        __syncthreads();
    }
    const float norm = (float)sqrt(s[0]);
    if (norm > 0.0f)
        for (int c = threadIdx.x; c < d; c += blockDim.x) row[c] /= norm;
}

// Removes from W_dec's gradient its component along each (unit) decoder row, so that the step keeps rows on the
// sphere to first order (the gradient projection SAE trainers use before renormalising). One block per row.
extern "C" __global__ void project_out_rows(const float* __restrict__ w, float* __restrict__ g, int d) {
    __shared__ double s[1024];
    const float* row = w + (size_t)blockIdx.x * d;
    float* grow = g + (size_t)blockIdx.x * d;
    double acc = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) acc += (double)row[c] * (double)grow[c];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int w2 = blockDim.x >> 1; w2 > 0; w2 >>= 1) {
        if (threadIdx.x < w2) s[threadIdx.x] += s[threadIdx.x + w2];
        __syncthreads();
    }
    const float dotp = (float)s[0];
    for (int c = threadIdx.x; c < d; c += blockDim.x) grow[c] -= dotp * row[c];
}
