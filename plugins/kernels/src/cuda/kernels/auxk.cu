// AuxK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", appendix A.2) on the GPU (issue #13):
// compiled by NVRTC at run time, and for sm_80 / sm_90 by plugins/kernels/tests/nvrtc_compile.rs without a GPU.
//
// A step's AuxK term is put together from kernels of the other files, with the CPU engine's semantics
// (engine.rs loss_and_grads and aux_row):
//   1. dead_latent_mask (here): which latents are dead at this step;
//   2. topk_rows (topk.cu) with allowed = that mask and signed_keys = 1: the k_aux largest raw pre-activations
//      among the dead latents, negative ones too;
//   3. sparse_decode (sparse.cu) with b_dec = null: e_hat = sum of those latents' decoder rows;
//   4. auxk_residual (here): the AuxK residual against the stop-gradient target x - x_hat, scaled, and its rows'
//      squared norms (summed by the host in row order);
//   5. slot_dots and latent_gradients (sparse.cu) over the AuxK slots: their gradients, added to the main ones.

// The dead-latent tracker of train.rs (DeadTracker), one thread per latent: after a step in which fired[j] says
// whether latent j fired on any row (l0_and_fired), steps_since_fired[j] becomes 0 if it fired, else one more
// (saturating); mask[j] = 1 when the count is >= window (dead: not fired in the last `window` steps), and dead_count
// gets the number of dead latents. fired is cleared for the next step.
extern "C" __global__ void dead_latent_mask(unsigned char* __restrict__ fired,
                                            unsigned long long* __restrict__ steps_since_fired, int m,
                                            unsigned long long window, unsigned char* __restrict__ mask,
                                            unsigned int* __restrict__ dead_count) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    unsigned long long c = steps_since_fired[j];
    c = fired[j] ? 0ull : (c == ~0ull ? c : c + 1ull);
    steps_since_fired[j] = c;
    fired[j] = 0;
    const bool dead = c >= window;
    mask[j] = dead ? 1 : 0;
    // Integer atomics: the count does not depend on the order of the additions.
    if (dead) atomicAdd(dead_count, 1u);
}

// ra[r, c] = scale * (e_hat[r, c] - target[r, c]) with target = x[r, c] - x_hat[r, c] (x_hat includes b_dec), in
// place of e_hat; row_sq[r] = sum_c (e_hat - target)^2 in double, in a fixed tree. One block per row (blockDim a
// power of two <= 1024).
extern "C" __global__ void auxk_residual(float* __restrict__ e_hat, const float* __restrict__ x,
                                         const float* __restrict__ x_hat, int d, float scale,
                                         double* __restrict__ row_sq) {
    __shared__ double s[1024];
    const size_t r = blockIdx.x;
    double acc = 0.0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        const size_t i = r * d + c;
        const float e = e_hat[i] - (x[i] - x_hat[i]);
        acc += (double)e * (double)e;
        e_hat[i] = scale * e;
    }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int w = blockDim.x >> 1; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) row_sq[r] = s[0];
}
