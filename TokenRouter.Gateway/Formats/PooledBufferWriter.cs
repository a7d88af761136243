using System.Buffers;

namespace TokenRouter.Gateway.Formats;

/// <summary>An <see cref="IBufferWriter{T}"/> over rented arrays: request and response bodies are written without
/// growing fresh arrays per request. Return it with <see cref="Dispose"/>.</summary>
public sealed class PooledBufferWriter(int initialCapacity = 4096) : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    private int _written;

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);
    public int WrittenCount => _written;

    public void Advance(int count) => _written += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public void Write(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(GetSpan(bytes.Length));
        _written += bytes.Length;
    }

    public void Clear() => _written = 0;

    /// <summary>Hands the rented array and what was written to it over to the caller, who returns the array to
    /// <see cref="ArrayPool{T}.Shared"/>; the writer is empty afterwards.</summary>
    public ArraySegment<byte> Detach()
    {
        var written = new ArraySegment<byte>(_buffer, 0, _written);
        _buffer = [];
        _written = 0;
        return written;
    }

    private void Ensure(int sizeHint)
    {
        if (sizeHint < 1) sizeHint = 256;
        if (_buffer.Length - _written >= sizeHint) return;
        var next = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _written + sizeHint));
        _buffer.AsSpan(0, _written).CopyTo(next);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = next;
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _written = 0;
        if (buffer.Length > 0) ArrayPool<byte>.Shared.Return(buffer);
    }
}
