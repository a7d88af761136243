using System.Buffers;
using TokenRouter.Gateway.Errors;

namespace TokenRouter.Gateway.Forwarding;

/// <summary>A request body read into one rented buffer, bounded by the configured limit.</summary>
public sealed class RequestBody : IDisposable
{
    private byte[]? _buffer;

    public RequestBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }
    public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}

public static class RequestBodyReader
{
    /// <summary>Reads the whole body, answering 413 as soon as it is known to exceed <paramref name="limit"/>.</summary>
    /// <remarks>A <see cref="ValueTask{T}"/>: a small body has usually arrived with the headers, and the read then
    /// completes synchronously, without a Task for its result.</remarks>
    public static async ValueTask<RequestBody> ReadAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength is { } declared && declared > limit) throw ApiError.BodyTooLarge(limit);

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, request.ContentLength is { } cl ? cl + 1 : 16 * 1024));
        var length = 0;
        var reader = request.BodyReader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken);
                var sequence = result.Buffer;
                if (length + sequence.Length > limit)
                {
                    reader.AdvanceTo(sequence.End);
                    throw ApiError.BodyTooLarge(limit);
                }
                if (length + sequence.Length > buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1, Math.Max(buffer.Length * 2L, length + sequence.Length)));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                sequence.CopyTo(buffer.AsSpan(length));
                length += (int)sequence.Length;
                reader.AdvanceTo(sequence.End);
                if (result.IsCompleted) break;
            }
            return new RequestBody(buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }
}
